/**
 * The shell: asks the server whether a token is needed, shows the sign-in screen when it is and
 * none (or a refused one) is kept, then the left navigation and the page for the current route.
 */
import { useEffect, useId, useState, type FormEvent } from 'react';
import type { Session } from './api-types.js';
import { ApiError, api, auth, errorMessage } from './api.js';
import { ErrorBanner, Loading } from './components/ui.js';
import { LiveProvider, useLive } from './live.js';
import { AlertsPage } from './pages/alerts-page.js';
import { EntityForm, EntityList } from './pages/entity-pages.js';
import { SequenceRunPage, SyncRunPage } from './pages/run-pages.js';
import { SequencePage } from './pages/sequence-page.js';
import { SequenceWizard } from './pages/sequence-wizard.js';
import { SequencesPage } from './pages/sequences-page.js';
import { SyncForm } from './pages/sync-form.js';
import { SyncPage, SyncsPage } from './pages/sync-pages.js';
import { WebhooksPage } from './pages/webhooks-page.js';
import { href, interceptLinks, useRoute, type Route } from './router.js';

type SessionState =
  | { kind: 'checking' }
  | { kind: 'unreachable'; error: unknown }
  | { kind: 'signed-out'; authRequired: true; message?: string }
  | { kind: 'ready'; authRequired: boolean };

export function App() {
  const [session, setSession] = useState<SessionState>({ kind: 'checking' });
  const [attempt, setAttempt] = useState(0);

  useEffect(() => {
    let stale = false;
    setSession({ kind: 'checking' });
    api.get<Session>('/api/session').then(
      ({ authRequired }) => {
        if (stale) return;
        setSession(authRequired && !auth.token() ? { kind: 'signed-out', authRequired: true } : { kind: 'ready', authRequired });
      },
      (error: unknown) => !stale && setSession({ kind: 'unreachable', error }),
    );
    return () => {
      stale = true;
    };
  }, [attempt]);

  useEffect(
    () =>
      auth.onSignOut((reason) => {
        setSession((s) => (s.kind === 'ready' && !s.authRequired ? s : { kind: 'signed-out', authRequired: true, message: reason }));
      }),
    [],
  );

  switch (session.kind) {
    case 'checking':
      return <Loading label="Connecting to Lockstep…" />;
    case 'unreachable':
      return (
        <main className="center-screen">
          <div className="card narrow">
            <h1>Lockstep</h1>
            <ErrorBanner error={session.error} title="Cannot load the workspace" />
            <button type="button" className="button primary" onClick={() => setAttempt((n) => n + 1)}>
              Try again
            </button>
          </div>
        </main>
      );
    case 'signed-out':
      return <SignIn message={session.message} onSignedIn={() => setSession({ kind: 'ready', authRequired: true })} />;
    case 'ready':
      return (
        <LiveProvider key={auth.token() ?? 'open'}>
          <Shell authRequired={session.authRequired} />
        </LiveProvider>
      );
  }
}

function SignIn({ message, onSignedIn }: { message?: string; onSignedIn: () => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>(message);
  const [checking, setChecking] = useState(false);
  const id = useId();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!token.trim()) {
      setError('Paste an API token.');
      return;
    }
    setChecking(true);
    setError(undefined);
    auth.setToken(token.trim());
    try {
      await api.get('/api/workspace');
      onSignedIn();
    } catch (thrown) {
      setError(thrown instanceof ApiError && thrown.status === 401 ? 'That token was not accepted: it is wrong, or it was revoked.' : errorMessage(thrown));
    } finally {
      setChecking(false);
    }
  };

  return (
    <main className="center-screen">
      <form className="card narrow" onSubmit={(e) => void submit(e)} aria-labelledby={`${id}-title`}>
        <h1 id={`${id}-title`}>Sign in to Lockstep</h1>
        <p className="hint">This server needs an API token. Create one on the server with <code>lockstep token create --name NAME</code>.</p>
        <div className="field">
          <label htmlFor={`${id}-token`}>API token</label>
          <input id={`${id}-token`} type="password" autoComplete="current-password" value={token} onChange={(e) => setToken(e.target.value)} autoFocus />
        </div>
        {error && (
          <p className="field-error" role="alert">
            {error}
          </p>
        )}
        <button type="submit" className="button primary" disabled={checking}>
          {checking ? 'Checking…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}

const NAV: ReadonlyArray<{ section: Section; label: string; to: string }> = [
  { section: 'sequences', label: 'Sequences', to: href.sequences() },
  { section: 'syncs', label: 'Syncs', to: href.syncs() },
  { section: 'models', label: 'Models', to: href.entities('models') },
  { section: 'sources', label: 'Sources', to: href.entities('sources') },
  { section: 'destinations', label: 'Destinations', to: href.entities('destinations') },
  { section: 'alerts', label: 'Alerts', to: href.alerts() },
  { section: 'webhooks', label: 'Webhooks', to: href.webhooks() },
];

type Section = 'sequences' | 'syncs' | 'models' | 'sources' | 'destinations' | 'alerts' | 'webhooks';

/** The entry of the left navigation a route belongs to. */
function sectionOf(route: Route): Section | null {
  switch (route.page) {
    case 'sequences':
    case 'new-sequence':
    case 'sequence':
    case 'edit-sequence':
    case 'sequence-run':
      return 'sequences';
    case 'syncs':
    case 'new-sync':
    case 'sync':
    case 'edit-sync':
    case 'sync-run':
      return 'syncs';
    case 'entities':
    case 'new-entity':
    case 'entity':
      return route.section;
    case 'alerts':
    case 'webhooks':
      return route.page;
    case 'not-found':
      return null;
  }
}

function Shell({ authRequired }: { authRequired: boolean }) {
  const route = useRoute();
  const live = useLive();
  const section = sectionOf(route);
  useEffect(() => interceptLinks(), []);
  return (
    <div className="shell">
      <nav className="sidebar" aria-label="Main">
        <a className="brand" href={href.sequences()}>
          <span className="brand-mark" aria-hidden="true">
            ⇉
          </span>
          Lockstep
        </a>
        <ul>
          {NAV.map((item) => (
            <li key={item.section}>
              <a href={item.to} aria-current={section === item.section ? 'page' : undefined}>
                {item.label}
              </a>
            </li>
          ))}
        </ul>
        <div className="sidebar-foot">
          <span className={`live live-${live.state}`} title="Live updates from the server">
            {live.state === 'live' ? 'Live' : live.state === 'connecting' ? 'Connecting…' : 'Offline'}
          </span>
          {authRequired && (
            <button type="button" className="link" onClick={() => auth.signOut()}>
              Sign out
            </button>
          )}
        </div>
      </nav>
      <main className="content">
        <RoutePage route={route} />
      </main>
    </div>
  );
}

function RoutePage({ route }: { route: Route }) {
  switch (route.page) {
    case 'sequences':
      return <SequencesPage />;
    case 'new-sequence':
      return <SequenceWizard />;
    case 'sequence':
      return <SequencePage key={route.slug} slug={route.slug} runId={route.runId} />;
    case 'edit-sequence':
      return <SequenceWizard slug={route.slug} />;
    case 'syncs':
      return <SyncsPage />;
    case 'new-sync':
      return <SyncForm />;
    case 'sync':
      return <SyncPage key={route.slug} slug={route.slug} runId={route.runId} />;
    case 'edit-sync':
      return <SyncForm key={route.slug} slug={route.slug} />;
    case 'entities':
      return <EntityList key={route.section} section={route.section} />;
    case 'new-entity':
      return <EntityForm key={`${route.section}/new`} section={route.section} />;
    case 'entity':
      return <EntityForm key={`${route.section}/${route.slug}`} section={route.section} slug={route.slug} />;
    case 'sync-run':
      return <SyncRunPage key={route.id} id={route.id} />;
    case 'sequence-run':
      return <SequenceRunPage key={route.id} id={route.id} />;
    case 'alerts':
      return <AlertsPage />;
    case 'webhooks':
      return <WebhooksPage />;
    case 'not-found':
      return (
        <div className="page">
          <h1>Page not found</h1>
          <p>
            Nothing lives at <code>{route.path}</code>. Go to <a href={href.sequences()}>Sequences</a>.
          </p>
        </div>
      );
  }
}
