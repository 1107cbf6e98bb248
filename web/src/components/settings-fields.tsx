/**
 * A connector kind's settings as form fields, generated from the JSON Schema the server gives
 * (`GET /api/connector-kinds`), so a new kind needs no new form. Text, numbers, yes/no and choices
 * get their own inputs; anything richer (headers, a rate limit) is written as JSON.
 *
 * Secrets are write-only: a stored secret comes back hidden (`***`) and is never put in a field.
 * Its field stays empty, says "unchanged", and sends the hidden value back (which the server reads
 * as "keep the stored one") until something is typed in it.
 */
import { useId } from 'react';
import type { JsonSchema } from '../api-types.js';
import { FieldError } from './field.js';

/** What is typed in each setting's field: text, `true`/`false`, or JSON for rich settings. */
export type SettingsDraft = Record<string, string>;

type Input = 'text' | 'number' | 'boolean' | 'choice' | 'json';

function inputOf(schema: JsonSchema): Input {
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  if (schema.enum && schema.enum.every((v) => typeof v === 'string')) return 'choice';
  if (type === 'string') return 'text';
  if (type === 'number' || type === 'integer') return 'number';
  if (type === 'boolean') return 'boolean';
  return 'json';
}

/** A stored value the server hid (its secret part is `***`). */
export const isHidden = (value: unknown): boolean => JSON.stringify(value ?? null).includes('***');

/** The draft of stored settings; hidden secrets stay out of the fields. */
export function settingsDraft(schema: JsonSchema | null | undefined, stored: Record<string, unknown>): SettingsDraft {
  const draft: SettingsDraft = {};
  for (const [name, property] of Object.entries(schema?.properties ?? {})) {
    const value = stored[name];
    if (value === undefined || value === null || isHidden(value)) {
      draft[name] = '';
      continue;
    }
    draft[name] = inputOf(property) === 'json' ? JSON.stringify(value, null, 2) : String(value);
  }
  return draft;
}

/**
 * The settings to send: empty fields left out (their defaults apply), an untouched secret as it
 * was read (the server keeps the stored one). `problems` gets a message per field that is not JSON.
 */
export function settingsFromDraft(
  schema: JsonSchema | null | undefined,
  draft: SettingsDraft,
  stored: Record<string, unknown>,
  problems: Record<string, string>,
): Record<string, unknown> {
  const settings: Record<string, unknown> = {};
  for (const [name, property] of Object.entries(schema?.properties ?? {})) {
    const text = draft[name] ?? '';
    if (text.trim() === '') {
      if (isHidden(stored[name])) settings[name] = stored[name];
      continue;
    }
    switch (inputOf(property)) {
      case 'text':
      case 'choice':
        settings[name] = text;
        break;
      case 'number':
        settings[name] = Number.isFinite(Number(text)) ? Number(text) : text;
        break;
      case 'boolean':
        settings[name] = text === 'true';
        break;
      case 'json':
        try {
          settings[name] = JSON.parse(text) as unknown;
        } catch {
          problems[name] = 'Write this setting as JSON, e.g. {"Authorization": "Bearer ${API_TOKEN}"}.';
        }
        break;
    }
  }
  return settings;
}

/** A field's label: `clientSecret` → "Client secret", `timeoutMs` → "Timeout ms". */
export function labelOf(name: string): string {
  const words = name.replace(/([a-z0-9])([A-Z])/g, '$1 $2').toLowerCase();
  return words === 'url' ? 'URL' : words[0]!.toUpperCase() + words.slice(1).replace(/\burl\b/g, 'URL');
}

/** The first sentence of a description, for a hint under the field. */
function hintOf(schema: JsonSchema): string | undefined {
  return schema.description?.replace(/\s*\(default: [^)]*\)\.?$/, '').trim() || undefined;
}

export function SettingsFields(props: {
  schema: JsonSchema | null | undefined;
  draft: SettingsDraft;
  onChange: (draft: SettingsDraft) => void;
  /** Settings that are secrets (write-only). */
  secrets: readonly string[];
  /** The stored values, to know which secrets are kept when their field stays empty. */
  stored: Record<string, unknown>;
  /** The message for a field, from the server's `details` or a local check. */
  error: (field: string) => string | undefined;
}) {
  const id = useId();
  const required = new Set(props.schema?.required ?? []);
  const set = (name: string, value: string) => props.onChange({ ...props.draft, [name]: value });
  return (
    <>
      {Object.entries(props.schema?.properties ?? {}).map(([name, property]) => {
        const input = inputOf(property);
        const fieldId = `${id}-${name}`;
        const secret = props.secrets.includes(name);
        const kept = secret && isHidden(props.stored[name]);
        const value = props.draft[name] ?? '';
        const message = props.error(name);
        const fallback = property.default !== undefined && !secret ? `default: ${typeof property.default === 'object' ? JSON.stringify(property.default) : String(property.default)}` : '';
        const placeholder = kept ? 'unchanged' : fallback;
        const hint = [secret ? (kept ? 'Secret, stored and hidden: type a new value to replace it.' : 'Secret: never shown again once saved.') : '', hintOf(property) ?? '']
          .filter(Boolean)
          .join(' ');
        const describedBy = hint ? `${fieldId}-hint` : undefined;
        return (
          <div className="field" key={name}>
            <div className="label-row">
              <label htmlFor={fieldId}>{labelOf(name)}</label>
              {required.has(name) && !kept && (
                <span className="required" aria-hidden="true">
                  *
                </span>
              )}
              {secret && (
                <span className="tag" aria-hidden="true">
                  secret
                </span>
              )}
            </div>
            {input === 'choice' ? (
              <select id={fieldId} value={value} onChange={(e) => set(name, e.target.value)} aria-invalid={Boolean(message)} aria-describedby={describedBy}>
                <option value="">{fallback || 'Choose…'}</option>
                {(property.enum as string[]).map((option) => (
                  <option key={option} value={option}>
                    {option}
                  </option>
                ))}
              </select>
            ) : input === 'boolean' ? (
              <select id={fieldId} value={value} onChange={(e) => set(name, e.target.value)} aria-invalid={Boolean(message)} aria-describedby={describedBy}>
                <option value="">{fallback || 'Not set'}</option>
                <option value="true">Yes</option>
                <option value="false">No</option>
              </select>
            ) : input === 'json' ? (
              <textarea
                id={fieldId}
                className="mono"
                rows={3}
                value={value}
                placeholder={placeholder}
                onChange={(e) => set(name, e.target.value)}
                aria-invalid={Boolean(message)}
                aria-describedby={describedBy}
                spellCheck={false}
              />
            ) : (
              <input
                id={fieldId}
                className={input === 'text' ? 'mono' : undefined}
                type={secret ? 'password' : input === 'number' ? 'number' : 'text'}
                autoComplete={secret ? 'new-password' : 'off'}
                value={value}
                placeholder={placeholder}
                onChange={(e) => set(name, e.target.value)}
                aria-invalid={Boolean(message)}
                aria-required={required.has(name) && !kept}
                aria-describedby={describedBy}
                spellCheck={false}
              />
            )}
            {hint && (
              <span className="hint" id={describedBy}>
                {hint}
              </span>
            )}
            <FieldError message={message} />
          </div>
        );
      })}
    </>
  );
}
