/** The stand-in ships with Lockstep (the demo runs against it); tests import it from here as before. */
export * from '../../src/standins/hubspot-standin.js';
