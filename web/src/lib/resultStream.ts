// Reads the query API's JSON document — `{"columns":[…],"rows":[[…],…],…,"truncated":bool}` — as
// it streams: the columns as soon as the head has arrived, then each row the moment its closing
// bracket has, so the grid can paint the first rows long before the last one is sent. Chunks may
// cut the text anywhere (inside a string, an escape or a multi-byte character), and a json
// column's value may hold brackets and newlines, so rows are found by a scan that follows
// strings and nesting rather than by lines.

export interface ResultColumn {
  name: string;
  type: string;
}

/** What follows the rows: whether the result was cut short, and which columns lost text. */
export interface ResultTail {
  truncated: boolean;
  truncated_columns?: string[] | null;
  lossy_columns?: string[] | null;
}

/** The document stopped before its end, or is not the API's result document. */
export class IncompleteResult extends Error {}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

type Phase = "head" | "rows" | "tail";

export class ResultStreamParser {
  private readonly decoder = new TextDecoder();
  /** Text not yet consumed: from the head's start, the current row's start, or the tail's. */
  private buf = "";
  /** Where the scan goes on in `buf`. */
  private pos = 0;
  private phase: Phase = "head";
  private depth = 0;
  private inString = false;
  private escaped = false;
  /** The last string that ended at depth 1 (a key of the top object), as offsets in `buf`. */
  private keyStart = -1;
  private keyEnd = -1;
  private stringStart = -1;
  /** Where the row being scanned starts in `buf`, or -1 between rows. */
  private rowStart = -1;
  private tail = "";
  private rowsSeen = 0;

  columns: ResultColumn[] | null = null;

  /** Rows parsed so far. */
  get rowCount(): number {
    return this.rowsSeen;
  }

  /** Feeds a chunk; answers the rows it completed (the columns are in `columns` once known). */
  push(chunk: Uint8Array | string): unknown[][] {
    const text = typeof chunk === "string" ? chunk : this.decoder.decode(chunk, { stream: true });
    if (this.phase === "tail") {
      this.tail += text;
      return [];
    }
    this.buf += text;
    const rows: unknown[][] = [];
    this.scan(rows);
    return rows;
  }

  /** The tail once the stream has ended; throws `IncompleteResult` if the document is not whole. */
  finish(): ResultTail {
    const rest = this.decoder.decode();
    if (rest) this.push(rest);
    if (this.phase !== "tail") throw new IncompleteResult("the result ended before its last row");
    const tail = this.tail.trim();
    // `,"truncated":false}` (perhaps with the column lists before it).
    if (!tail.startsWith(",") || !tail.endsWith("}")) throw new IncompleteResult("the result ended before its end");
    let parsed: unknown;
    try {
      parsed = JSON.parse(`{${tail.slice(1)}`);
    } catch {
      throw new IncompleteResult("the result's end is not JSON");
    }
    const t = parsed as Partial<ResultTail>;
    if (typeof t.truncated !== "boolean") throw new IncompleteResult("the result does not say whether it was cut short");
    return { truncated: t.truncated, truncated_columns: t.truncated_columns ?? null, lossy_columns: t.lossy_columns ?? null };
  }

  private scan(rows: unknown[][]): void {
    const buf = this.buf;
    const n = buf.length;
    let i = this.pos;
    let depth = this.depth;
    let inString = this.inString;
    let escaped = this.escaped;
    // The rows completed in this chunk, as one run of text from the first's start to the last's
    // end (the commas between them included), parsed in one go.
    let batchStart = this.rowStart;
    let batchEnd = -1;
    while (i < n) {
      if (inString) {
        // Jump to the string's closing quote: the next quote not escaped by a backslash.
        if (escaped) {
          escaped = false;
          i++;
          continue;
        }
        const quote = buf.indexOf('"', i);
        if (quote < 0) {
          // The string goes on in the next chunk; a backslash at the end escapes its first character.
          let slashes = 0;
          for (let k = n - 1; k >= i && buf.charCodeAt(k) === BACKSLASH; k--) slashes++;
          escaped = slashes % 2 === 1;
          i = n;
          break;
        }
        let slashes = 0;
        for (let k = quote - 1; k >= i && buf.charCodeAt(k) === BACKSLASH; k--) slashes++;
        i = quote + 1;
        if (slashes % 2 === 1) continue;
        inString = false;
        if (depth === 1) {
          this.keyStart = this.stringStart;
          this.keyEnd = i;
        }
        continue;
      }
      const c = buf.charCodeAt(i);
      if (c === QUOTE) {
        inString = true;
        this.stringStart = i;
      } else if (c === OPEN_BRACKET || c === OPEN_BRACE) {
        if (this.phase === "head" && depth === 1 && c === OPEN_BRACKET && this.key(buf) === "rows") {
          this.columns = parseColumns(buf.slice(0, i + 1));
          this.phase = "rows";
        } else if (this.phase === "rows" && depth === 2) {
          this.rowStart = i;
          if (batchStart < 0) batchStart = i;
        }
        depth++;
      } else if (c === CLOSE_BRACKET || c === CLOSE_BRACE) {
        depth--;
        if (depth < 0) throw new IncompleteResult("the result is not the API's result document");
        if (this.phase === "rows" && depth === 2 && this.rowStart >= 0) {
          batchEnd = i + 1;
          this.rowStart = -1;
        } else if (this.phase === "rows" && depth === 1) {
          // The rows' closing bracket: what follows is the tail.
          this.parseBatch(buf, batchStart, batchEnd, rows);
          this.phase = "tail";
          this.tail = buf.slice(i + 1);
          this.buf = "";
          this.pos = 0;
          this.depth = depth;
          this.inString = false;
          this.escaped = false;
          return;
        }
      }
      i++;
    }
    this.parseBatch(buf, batchStart, batchEnd, rows);
    this.depth = depth;
    this.inString = inString;
    this.escaped = escaped;
    // Keep only what a later chunk may still need.
    if (this.phase === "rows") {
      const keep = this.rowStart >= 0 ? this.rowStart : n;
      this.buf = buf.slice(keep);
      this.pos = n - keep;
      if (this.rowStart >= 0) this.rowStart = 0;
      if (inString) this.stringStart -= keep;
    } else {
      this.pos = n;
    }
  }

  private parseBatch(buf: string, start: number, end: number, rows: unknown[][]): void {
    if (start < 0 || end < 0) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(`[${buf.slice(start, end)}]`);
    } catch {
      throw new IncompleteResult("a row of the result is not JSON");
    }
    for (const row of parsed as unknown[]) {
      if (!Array.isArray(row)) throw new IncompleteResult("a row of the result is not an array");
      rows.push(row);
    }
    this.rowsSeen += (parsed as unknown[]).length;
  }

  private key(buf: string): string | null {
    if (this.keyStart < 0) return null;
    try {
      const k: unknown = JSON.parse(buf.slice(this.keyStart, this.keyEnd));
      return typeof k === "string" ? k : null;
    } catch {
      return null;
    }
  }
}

function parseColumns(head: string): ResultColumn[] {
  let doc: unknown;
  try {
    doc = JSON.parse(`${head}]}`);
  } catch {
    throw new IncompleteResult("the result's head is not JSON");
  }
  const columns = (doc as { columns?: unknown }).columns;
  if (!Array.isArray(columns)) throw new IncompleteResult("the result names no columns");
  return columns.map((c) => {
    const col = c as Partial<ResultColumn>;
    return { name: String(col.name ?? ""), type: String(col.type ?? "") };
  });
}

/**
 * Reads a result body, handing over the columns once and then each batch of rows as its chunk
 * arrives; answers the tail. A body that breaks off (the query failed after its first rows were
 * sent, or the connection dropped) rejects, with the rows before it already handed over.
 */
export async function readResult(
  body: ReadableStream<Uint8Array>,
  onColumns: (columns: ResultColumn[]) => void,
  onRows: (rows: unknown[][]) => void,
): Promise<ResultTail> {
  const reader = body.getReader();
  const parser = new ResultStreamParser();
  let announced = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const rows = parser.push(value);
    if (!announced && parser.columns) {
      announced = true;
      onColumns(parser.columns);
    }
    if (rows.length) onRows(rows);
  }
  const tail = parser.finish();
  if (!announced && parser.columns) onColumns(parser.columns);
  return tail;
}
