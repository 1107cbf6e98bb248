/**
 * The HubSpot kind's settings: the connection's (a private app's token, where the API is, how fast
 * to go) and a sync's (the unique property records are matched on, and associations to parents),
 * plus what HubSpot itself defines about its standard objects.
 */
import { z } from 'zod';
import { hinted } from '../../core/hints.js';
import { urlSetting } from '../settings.js';
import type { SyncProblem } from '../../core/connector-kind.js';
import type { DestinationCapabilities } from '../../core/ports.js';

/** HubSpot's own API root. */
export const HUBSPOT_API_URL = 'https://api.hubapi.com';

export const hubspotConnectionSettings = z
  .strictObject({
    accessToken: z
      .string()
      .min(1, { error: hinted('accessToken is empty', 'give the private app\'s access token, e.g. "${HUBSPOT_TOKEN}"') })
      .optional()
      .meta({
        description:
          'A private app\'s access token (Settings › Integrations › Private apps), with the crm.objects.*.read/write and crm.schemas.*.read scopes of the objects synced; usually "${HUBSPOT_TOKEN}". Or, for an OAuth app, clientId, clientSecret and refreshToken instead.',
      }),
    clientId: z
      .string()
      .min(1, { error: hinted('clientId is empty', 'give the OAuth app\'s client ID, e.g. "${HUBSPOT_CLIENT_ID}"') })
      .optional()
      .meta({ description: "An OAuth app's client ID (the app's Auth tab), with clientSecret and refreshToken: Lockstep gets the 30-minute access tokens itself, instead of accessToken." }),
    clientSecret: z
      .string()
      .min(1, { error: hinted('clientSecret is empty', 'give the OAuth app\'s client secret, e.g. "${HUBSPOT_CLIENT_SECRET}"') })
      .optional()
      .meta({ description: "The OAuth app's client secret; usually \"${HUBSPOT_CLIENT_SECRET}\"." }),
    refreshToken: z
      .string()
      .min(1, { error: hinted('refreshToken is empty', 'give the refresh token the portal\'s install of the app gave, e.g. "${HUBSPOT_REFRESH_TOKEN}"') })
      .optional()
      .meta({ description: 'The refresh token the install of the OAuth app in the portal gave (POST /oauth/v1/token, grant_type authorization_code); usually "${HUBSPOT_REFRESH_TOKEN}".' }),
    baseUrl: urlSetting(['https:', 'http:'], HUBSPOT_API_URL, `Where HubSpot's API is (default: ${HUBSPOT_API_URL}); another URL only for a proxy or a test stand-in.`, 'baseUrl').default(HUBSPOT_API_URL),
    requestsPerSecond: z
      .number()
      .positive()
      .max(1000)
      .optional()
      .meta({
        description:
          "Requests per second at most, shared by every run writing through this connection (default: 19 with accessToken, i.e. 190 per 10 s, HubSpot's limit for Professional and Enterprise private apps, 10 for Free and Starter portals; 10 for an OAuth app, whose limit is 100 per 10 s).",
      }),
    concurrency: z
      .number()
      .int()
      .min(1)
      .max(32)
      .default(4)
      .meta({ description: 'Requests under way at once at most, and batches of a run written at once (default: 4).' }),
    timeoutSeconds: z
      .number()
      .positive()
      .max(600)
      .default(30)
      .meta({ description: 'How long one request may take before it counts as failed (and is retried) (default: 30).' }),
  })
  .superRefine((settings, ctx) => {
    const oauth = (['clientId', 'clientSecret', 'refreshToken'] as const).filter((name) => settings[name] !== undefined);
    if (settings.accessToken !== undefined && oauth.length > 0) {
      ctx.addIssue({
        code: 'custom',
        path: [oauth[0] as string],
        message: hinted('give either accessToken (a private app) or clientId, clientSecret and refreshToken (an OAuth app), not both', `remove ${oauth.join(', ')} or accessToken`),
      });
    } else if (settings.accessToken === undefined && oauth.length < 3) {
      const missing = (['clientId', 'clientSecret', 'refreshToken'] as const).filter((name) => settings[name] === undefined);
      ctx.addIssue({
        code: 'custom',
        path: [oauth.length === 0 ? 'accessToken' : (missing[0] as string)],
        message:
          oauth.length === 0
            ? hinted('accessToken is missing', 'give the private app\'s access token, e.g. accessToken: "${HUBSPOT_TOKEN}" (or an OAuth app\'s clientId, clientSecret and refreshToken)')
            : hinted(`${missing.join(' and ')} ${missing.length === 1 ? 'is' : 'are'} missing`, 'an OAuth app needs clientId, clientSecret and refreshToken together'),
      });
    }
  });
export type HubSpotConnectionSettings = z.output<typeof hubspotConnectionSettings>;

/** How the connection authenticates: a private app's token, or an OAuth app's refresh token. */
export type HubSpotCredentials = { accessToken: string } | { clientId: string; clientSecret: string; refreshToken: string };

/** Requests per second a private app's token may make at most by default (190 per 10 s). */
const PRIVATE_APP_REQUESTS_PER_SECOND = 19;
/** An OAuth app's: "Apps using OAuth are only subject to a limit of 100 requests every 10 seconds". */
const OAUTH_APP_REQUESTS_PER_SECOND = 10;

/** The connection's request rate: as set, else HubSpot's limit for the kind of app. */
export function hubspotRequestsPerSecond(settings: HubSpotConnectionSettings): number {
  return settings.requestsPerSecond ?? (settings.accessToken !== undefined ? PRIVATE_APP_REQUESTS_PER_SECOND : OAUTH_APP_REQUESTS_PER_SECOND);
}

/** The credentials the settings give (checked by the schema: one form or the other). */
export function hubspotCredentials(settings: HubSpotConnectionSettings): HubSpotCredentials {
  if (settings.accessToken !== undefined) return { accessToken: settings.accessToken };
  return { clientId: settings.clientId ?? '', clientSecret: settings.clientSecret ?? '', refreshToken: settings.refreshToken ?? '' };
}

/** Who defined an association type (HubSpot's `associationCategory`). */
export const AssociationCategory = {
  /** HubSpot's own types, e.g. contact → company 279 (the default, unlabeled type). */
  HubSpotDefined: 'HUBSPOT_DEFINED',
  /** Labels a portal's users created. */
  UserDefined: 'USER_DEFINED',
  /** Types an integration created. */
  IntegratorDefined: 'INTEGRATOR_DEFINED',
} as const;
export type AssociationCategory = (typeof AssociationCategory)[keyof typeof AssociationCategory];

/** The standard objects by every name HubSpot accepts for them in a path: plural, singular, type id. */
const STANDARD_OBJECTS: Readonly<Record<string, string>> = {
  contacts: 'contacts',
  contact: 'contacts',
  '0-1': 'contacts',
  companies: 'companies',
  company: 'companies',
  '0-2': 'companies',
  deals: 'deals',
  deal: 'deals',
  '0-3': 'deals',
  tickets: 'tickets',
  ticket: 'tickets',
  '0-5': 'tickets',
};

/**
 * HubSpot-defined default (unlabeled) association types between standard objects, `from→to` →
 * type id ("Associations v4 › association type ID values").
 */
const DEFAULT_ASSOCIATION_TYPES: Readonly<Record<string, number>> = {
  'contacts→companies': 279,
  'companies→contacts': 280,
  'deals→companies': 341,
  'companies→deals': 342,
  'deals→contacts': 3,
  'contacts→deals': 4,
  'tickets→contacts': 16,
  'contacts→tickets': 15,
  'tickets→companies': 339,
  'companies→tickets': 340,
  'deals→tickets': 27,
  'tickets→deals': 28,
};

/** A standard object's plural name for any of its names, or the name as written (custom objects). */
export function standardObject(name: string): string {
  return STANDARD_OBJECTS[name.toLowerCase()] ?? name;
}

/** The default association type from one object to another, when HubSpot defines one. */
export function defaultAssociationType(from: string, to: string): number | undefined {
  return DEFAULT_ASSOCIATION_TYPES[`${standardObject(from)}→${standardObject(to)}`];
}

/** The objects a default association type exists from `from` to, for messages. */
export function defaultAssociationTargets(from: string): string[] {
  const prefix = `${standardObject(from)}→`;
  return Object.keys(DEFAULT_ASSOCIATION_TYPES)
    .filter((pair) => pair.startsWith(prefix))
    .map((pair) => pair.slice(prefix.length));
}

/** One record of an object in messages: `company`, `contact`, a custom object's name as it is. */
export function singular(object: string): string {
  const name = standardObject(object);
  if (name === 'companies') return 'company';
  if (/^[a-z_]+s$/i.test(name) && !/ss$/i.test(name)) return name.slice(0, -1);
  return name;
}

const association = z
  .strictObject({
    object: z.string().min(1).meta({ description: 'The associated object type, e.g. `companies` (a standard object, or a custom object\'s type id, `p_{name}` or `p{portalId}_{name}`: HubSpot no longer takes its plain name).' }),
    from: z
      .string()
      .min(1)
      .meta({ description: "The model column holding the parent's primary key (or the field it is mapped to); rows where it is empty get no association." }),
    lookup: z
      .strictObject({ sync: z.string().min(1).meta({ description: 'The sync that delivers the parents; the ids it recorded are the associated records.' }) })
      .meta({ description: "Where the associated record's HubSpot id comes from." }),
    type: z
      .number()
      .int()
      .positive()
      .optional()
      .meta({
        description:
          'The association type id (default: HubSpot\'s unlabeled type for the pair: contacts→companies 279, companies→contacts 280, deals→companies 341, deals→contacts 3, contacts→deals 4, companies→deals 342); needed for labels and custom objects.',
      }),
    category: z
      .enum([AssociationCategory.HubSpotDefined, AssociationCategory.UserDefined, AssociationCategory.IntegratorDefined])
      .default(AssociationCategory.HubSpotDefined)
      .meta({ description: 'Who defined `type`: HUBSPOT_DEFINED (default), USER_DEFINED (a label made in the portal) or INTEGRATOR_DEFINED.' }),
  })
  .superRefine((value, ctx) => {
    // Defaults exist only between standard objects. The settings do not hold the sync's own object,
    // so the pair as a whole is checked when the sync runs (prepare).
    if (value.type === undefined && !Object.keys(DEFAULT_ASSOCIATION_TYPES).some((pair) => pair.endsWith(`→${standardObject(value.object)}`))) {
      ctx.addIssue({
        code: 'custom',
        path: ['type'],
        message: hinted(
          `HubSpot has no default association type to "${value.object}"`,
          `set type to the association type id (GET /crm/v4/associations/{object}/${value.object}/labels lists them)`,
        ),
      });
    }
  });

export const hubspotSyncSettings = z.strictObject({
  idProperty: z
    .string()
    .min(1, { error: hinted('idProperty is empty', 'name the unique property records are matched on, e.g. email for contacts') })
    .meta({
      description:
        "The object's unique-value property records are matched on (e.g. `email` for contacts, or a custom unique `external_id`); the sync's primary key column is written to it.",
    }),
  associations: z
    .array(association)
    .default([])
    .meta({ description: 'Records each row is associated with: one entry per associated object (default: none).' }),
});
export type HubSpotSyncSettings = z.output<typeof hubspotSyncSettings>;
export type HubSpotAssociationSetting = HubSpotSyncSettings['associations'][number];

/**
 * An association's parent sync must write the associated object to the same HubSpot destination:
 * the ids it records are what the association links to. Each association that does not, as a
 * problem for `validate` (a parent that is not declared is reported by the lookup check).
 */
export function checkAssociationParents(sync: {
  settings: Record<string, unknown>;
  destination: string;
  syncOf: (slug: string) => { destination: string; object: string } | undefined;
}): SyncProblem[] {
  const problems: SyncProblem[] = [];
  const associations = Array.isArray(sync.settings.associations) ? (sync.settings.associations as unknown[]) : [];
  for (const [n, entry] of associations.entries()) {
    const { object, lookup } = (entry ?? {}) as { object?: unknown; lookup?: { sync?: unknown } };
    const slug = lookup?.sync;
    if (typeof object !== 'string' || typeof slug !== 'string') continue;
    const parent = sync.syncOf(slug);
    if (!parent) continue;
    const at = ['associations', n, 'lookup', 'sync'];
    if (parent.destination !== sync.destination) {
      problems.push({
        at,
        message: `sync "${slug}" writes to destination "${parent.destination}", not to "${sync.destination}": an association links records of one HubSpot portal, by the ids the parent sync recorded there`,
        hint: `look up the sync that writes ${object} to "${sync.destination}"`,
      });
      continue;
    }
    // Custom objects may be named by name or type id, so only a standard object on either side is compared.
    const [wanted, written] = [standardObject(object), standardObject(parent.object)];
    if (wanted !== written && (isStandardObject(object) || isStandardObject(parent.object))) {
      problems.push({
        at,
        message: `the association is to ${object}, but sync "${slug}" writes ${parent.object}, so the ids it recorded are not ${object} records`,
        hint: `look up the sync that writes ${object}, or associate with ${parent.object}`,
      });
    }
  }
  return problems;
}

function isStandardObject(name: string): boolean {
  return STANDARD_OBJECTS[name.toLowerCase()] !== undefined;
}

/** What every HubSpot destination can do. */
export const HUBSPOT_CAPABILITIES: DestinationCapabilities = { deletes: true, upsert: true, maxBatchSize: 100, recordIds: true };
