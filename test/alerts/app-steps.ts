/** What the alert tests do with an app: run a sync to its end, and let the alerts it raised go out. */
import type { App } from '../../src/app.js';

/** Runs sync `slug` once and waits for its end. */
export async function runSync(app: App, slug: string) {
  const { run } = await app.runs.triggerSync(slug);
  return app.runs.waitForSyncRun(run.id);
}

/** Every run so far evaluated and every due notice sent. */
export async function settle(app: App): Promise<void> {
  await app.alertMonitor.idle();
  await app.alerts.sendDue();
}
