/**
 * One table's mapping between a record and its row, declared once per record type: every
 * field names how it is kept (null: as it is), and its column is the field's name in
 * snake_case. The INSERT of a whole record and the reading of a row both come from it, so a
 * field cannot be written and then forgotten when read.
 */

export type Row = Record<string, unknown>;

/** How a field is kept in its column when it is not kept as it is. */
export interface Codec {
  toDb(v: unknown): unknown;
  /** `undefined` leaves the field out of the record (an absent optional field). */
  fromDb(v: unknown): unknown;
}

/** JSON in a TEXT column (arrays of strings). */
export const json: Codec = {
  toDb: (v) => JSON.stringify(v),
  fromDb: (v) => JSON.parse(v as string),
};

/** JSON in a nullable TEXT column for an optional field: absent ↔ NULL. */
export const jsonOrAbsent: Codec = {
  toDb: (v) => (v === undefined ? null : JSON.stringify(v)),
  fromDb: (v) => (v === null ? undefined : JSON.parse(v as string)),
};

/** BYTEA: pg reads a Buffer; the record holds a plain Uint8Array (a copy, like the SQLite store's). */
export const bytes: Codec = {
  toDb: (v) => Buffer.from(v as Uint8Array),
  fromDb: (v) => new Uint8Array(v as Buffer),
};

/** Every field of T, each with its codec (a missing or unknown field is a compile error). */
export type TableSpec<T> = { readonly [K in keyof T]-?: Codec | null };

const snake = (field: string): string => field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

export class Table<T> {
  private readonly fields: readonly { field: string; column: string; codec: Codec | null }[];

  constructor(
    readonly name: string,
    spec: TableSpec<T>,
  ) {
    this.fields = Object.entries(spec as Record<string, Codec | null>).map(([field, codec]) => ({
      field,
      column: snake(field),
      codec,
    }));
  }

  /**
   * `INSERT INTO <table> (<every column>) VALUES ($1…$n) <tail…>` and its values; the tail
   * (ON CONFLICT …) may use `excluded()` and parameters from $n+1.
   */
  insert(x: T, ...tail: string[]): [text: string, values: unknown[]] {
    const record = x as Row;
    const columns = this.fields.map((f) => f.column).join(', ');
    const params = this.fields.map((_, i) => `$${i + 1}`).join(', ');
    const values = this.fields.map((f) => {
      const v = record[f.field];
      return f.codec === null ? v : f.codec.toDb(v);
    });
    return [[`INSERT INTO ${this.name} (${columns}) VALUES (${params})`, ...tail].join(' '), values];
  }

  /** `column = excluded.column, …` for the fields named (all by default), for ON CONFLICT DO UPDATE SET. */
  excluded(...fields: (keyof T & string)[]): string {
    const chosen =
      fields.length === 0 ? this.fields : this.fields.filter((f) => fields.includes(f.field as keyof T & string));
    return chosen.map((f) => `${f.column} = excluded.${f.column}`).join(', ');
  }

  /** The record a row holds (columns not in the spec, such as `seq`, are ignored). */
  read(row: Row): T {
    const out: Row = {};
    for (const f of this.fields) {
      const v = f.codec === null ? row[f.column] : f.codec.fromDb(row[f.column]);
      if (v !== undefined) out[f.field] = v;
    }
    return out as T;
  }

  /** The record, or null when there is no row. */
  readOne(row: Row | undefined): T | null {
    return row === undefined ? null : this.read(row);
  }

  readAll(rows: readonly Row[]): T[] {
    return rows.map((r) => this.read(r));
  }
}
