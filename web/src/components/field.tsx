/** Validation messages next to fields, and matching the server's `details` keys to fields. */

export function FieldError({ message }: { message: string | undefined }) {
  if (!message) return null;
  return (
    <span className="field-error" role="alert">
      {message}
    </span>
  );
}

/** `members[1].after` and `body.members.1.after` both become `members.1.after`. */
export function normalizeField(field: string): string {
  return field
    .replace(/\[(\w+)\]/g, '.$1')
    .replace(/^\.+/, '')
    .replace(/^(body|request)\./, '');
}

export interface FieldErrors {
  /** The server's message for exactly this field. */
  get(field: string): string | undefined;
  /** Messages no field on screen claimed. */
  unclaimed(claimed: string[]): Array<[string, string]>;
  any: boolean;
}

export function fieldErrors(details: Record<string, string>): FieldErrors {
  const entries = Object.entries(details).map(([k, v]) => [normalizeField(k), v] as [string, string]);
  const exact = new Map(entries);
  return {
    get: (field) => exact.get(field),
    unclaimed: (claimed) => entries.filter(([k]) => !claimed.some((c) => k === c || k.startsWith(`${c}.`))),
    any: entries.length > 0,
  };
}
