// The MLflow pyfunc scoring protocol for tabular models (databricks-api.md §2.1): exactly one of
// dataframe_split | dataframe_records | instances | inputs, plus optional params.
import { badRequest, invalidParam } from './errors.js';
import { isObject, type Json } from './http.js';

const FORMAT_KEYS = ['dataframe_split', 'dataframe_records', 'instances', 'inputs'] as const;

/** Parses the request into numeric rows ordered like `features`. Every failure is a 400 naming the problem. */
export function parseTabular(body: Json, features: readonly string[]): number[][] {
  // Ensure exactly one input format key.
  const present = FORMAT_KEYS.filter((k) => body[k] !== undefined);
  if (present.length !== 1) {
    throw badRequest(
      present.length === 0
        ? `Request must contain one of ${FORMAT_KEYS.join(', ')}.`
        : `Request must contain exactly one input format key, got: ${present.join(', ')}.`,
    );
  }
  if (body.params !== undefined && !isObject(body.params)) throw badRequest("'params' must be a JSON object.");
  const format = present[0] as (typeof FORMAT_KEYS)[number];
  const value = body[format];
  const records = toRecords(format, value);
  return records.map((rec, i) => (Array.isArray(rec) ? positional(rec, i, features) : named(rec, i, features)));
}

/** Normalises every format to rows that are either keyed objects or positional arrays. */
function toRecords(format: (typeof FORMAT_KEYS)[number], value: unknown): (Json | unknown[])[] {
  switch (format) {
    case 'dataframe_split': {
      if (!isObject(value) || !Array.isArray(value.columns) || !Array.isArray(value.data)) {
        throw badRequest("'dataframe_split' must be an object with 'columns' and 'data' arrays.");
      }
      const columns = value.columns;
      if (!columns.every((c) => typeof c === 'string')) throw badRequest("'dataframe_split.columns' must be strings.");
      return value.data.map((row, i) => {
        if (!Array.isArray(row) || row.length !== columns.length) {
          throw badRequest(`'dataframe_split.data' row ${i} must be an array of ${columns.length} values.`);
        }
        return Object.fromEntries(columns.map((c, j) => [c as string, row[j]]));
      });
    }
    case 'dataframe_records':
      if (!Array.isArray(value) || !value.every(isObject)) throw badRequest("'dataframe_records' must be an array of objects.");
      return value;
    case 'instances':
      return rowList('instances', value);
    case 'inputs':
      // Columnar form {col: [values]} or the same row list as `instances`.
      if (isObject(value)) return columnar(value);
      return rowList('inputs', value);
  }
}

function rowList(key: string, value: unknown): (Json | unknown[])[] {
  if (!Array.isArray(value) || !value.every((r) => isObject(r) || Array.isArray(r))) {
    throw badRequest(`'${key}' must be a list of rows (objects or arrays).`);
  }
  return value as (Json | unknown[])[];
}

function columnar(value: Json): Json[] {
  const cols = Object.entries(value);
  const lengths = new Set(cols.map(([, v]) => (Array.isArray(v) ? v.length : -1)));
  if (lengths.has(-1) || lengths.size > 1) throw badRequest("Columnar 'inputs' must map each column to an array of equal length.");
  const n = cols[0] ? (cols[0][1] as unknown[]).length : 0;
  return Array.from({ length: n }, (_, i) => Object.fromEntries(cols.map(([c, v]) => [c, (v as unknown[])[i]])));
}

/** Accepts sklearn-style names too: "sepal length (cm)" → sepal_length. */
function normalise(column: string): string {
  return column
    .toLowerCase()
    .replace(/\(cm\)/g, '')
    .trim()
    .replace(/[^a-z0-9]+/g, '_');
}

function named(rec: Json, row: number, features: readonly string[]): number[] {
  const byName = new Map(Object.entries(rec).map(([k, v]) => [normalise(k), v]));
  return features.map((f) => {
    if (!byName.has(f)) throw invalidParam(`Missing required input column '${f}'. Expected columns: ${features.join(', ')}.`);
    return numeric(byName.get(f), f, row);
  });
}

function positional(values: unknown[], row: number, features: readonly string[]): number[] {
  if (values.length !== features.length) {
    throw invalidParam(`Row ${row} has ${values.length} values; expected ${features.length} (${features.join(', ')}).`);
  }
  return values.map((v, j) => numeric(v, features[j] ?? String(j), row));
}

function numeric(v: unknown, column: string, row: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw invalidParam(`Column '${column}' row ${row}: expected a number, got ${JSON.stringify(v) ?? 'undefined'}.`);
  }
  return v;
}
