import { describe, expect, it } from "vitest";
import { IncompleteResult, readResult, ResultStreamParser } from "./resultStream";

// As the API writes it: the head, each row on a line of its own, then the tail.
const DOC =
  '{"columns":[{"name":"id","type":"int8"},{"name":"doc","type":"json"},{"name":"t","type":"text"},{"name":"rows","type":"text"}],"rows":[' +
  '\n[1,{"a":[1,\n2],"b":"]}"},"say \\"hi\\", [twice]","żółw 😀"]' +
  ',\n[2,null,"back\\\\slash\\\\","]"]' +
  ',\n[3,[[1,2],[3]],"","{"]' +
  ',\n[4,"\\\\","a\\\\\\"b\\\\","\\"]\\""]' +
  '\n],"truncated_columns":["t"],"truncated":true}\n';

const ROWS = [
  [1, { a: [1, 2], b: "]}" }, 'say "hi", [twice]', "żółw 😀"],
  [2, null, "back\\slash\\", "]"],
  [3, [[1, 2], [3]], "", "{"],
  [4, "\\", 'a\\"b\\', '"]"'],
];

const COLUMNS = [
  { name: "id", type: "int8" },
  { name: "doc", type: "json" },
  { name: "t", type: "text" },
  { name: "rows", type: "text" },
];

describe("ResultStreamParser", () => {
  it("reads the columns, the rows and the tail of a whole document", () => {
    const p = new ResultStreamParser();
    const rows = p.push(DOC);
    expect(p.columns).toEqual(COLUMNS);
    expect(rows).toEqual(ROWS);
    expect(p.finish()).toEqual({ truncated: true, truncated_columns: ["t"], lossy_columns: null });
    expect(p.rowCount).toBe(4);
  });

  it("gives the same result however the bytes are cut", () => {
    const bytes = new TextEncoder().encode(DOC);
    for (const size of [1, 2, 3, 7, 64]) {
      const p = new ResultStreamParser();
      const rows: unknown[][] = [];
      for (let i = 0; i < bytes.length; i += size) rows.push(...p.push(bytes.slice(i, i + size)));
      expect(p.columns).toEqual(COLUMNS);
      expect(rows).toEqual(ROWS);
      expect(p.finish().truncated).toBe(true);
    }
  });

  it("hands out each row as soon as its closing bracket arrives", () => {
    const p = new ResultStreamParser();
    expect(p.push('{"columns":[{"name":"n","type":"int4"}],"rows":[')).toEqual([]);
    expect(p.columns).toEqual([{ name: "n", type: "int4" }]);
    expect(p.push("\n[1]")).toEqual([[1]]);
    expect(p.push(",\n[2")).toEqual([]);
    expect(p.push("]")).toEqual([[2]]);
    expect(p.push('\n],"truncated":false}\n')).toEqual([]);
    expect(p.finish()).toEqual({ truncated: false, truncated_columns: null, lossy_columns: null });
  });

  it("reads an empty result", () => {
    const p = new ResultStreamParser();
    expect(p.push('{"columns":[{"name":"x","type":"text"}],"rows":[],"truncated":false}\n')).toEqual([]);
    expect(p.columns).toEqual([{ name: "x", type: "text" }]);
    expect(p.finish().truncated).toBe(false);
  });

  it("says a document that stops early is incomplete, wherever it stops", () => {
    for (const cut of [0, 10, DOC.indexOf('"rows"') + 8, DOC.indexOf("[2,") + 4, DOC.indexOf("\n]"), DOC.indexOf('"truncated":') + 5]) {
      const p = new ResultStreamParser();
      p.push(DOC.slice(0, cut));
      expect(() => p.finish(), `cut at ${cut}`).toThrow(IncompleteResult);
    }
  });

  it("refuses what is not the API's document", () => {
    const garbled = new ResultStreamParser();
    expect(garbled.push('{"columns":[}],"rows":[[1]]')).toEqual([]);
    expect(() => garbled.finish()).toThrow(IncompleteResult);
    expect(() => new ResultStreamParser().push('{"columns":5,"rows":[')).toThrow(IncompleteResult);
    expect(() => new ResultStreamParser().push('{"columns":[],"rows":[\n{"a":1}')).toThrow(IncompleteResult);
    const p = new ResultStreamParser();
    p.push('{"columns":[],"rows":[],"truncated":"no"}');
    expect(() => p.finish()).toThrow(IncompleteResult);
  });
});

function body(chunks: string[], fail?: Error): ReadableStream<Uint8Array> {
  // One chunk per read, as a network body delivers them (an error in `start` would drop them).
  let next = 0;
  return new ReadableStream<Uint8Array>({
    pull(c) {
      const chunk = chunks[next++];
      if (chunk !== undefined) c.enqueue(new TextEncoder().encode(chunk));
      else if (fail) c.error(fail);
      else c.close();
    },
  });
}

describe("readResult", () => {
  it("announces the columns once, then the rows chunk by chunk", async () => {
    const seen: string[] = [];
    const tail = await readResult(
      body([DOC.slice(0, 150), DOC.slice(150, 200), DOC.slice(200)]),
      (c) => seen.push(`columns ${c.length}`),
      (r) => seen.push(`rows ${r.length}`),
    );
    expect(seen[0]).toBe("columns 4");
    expect(seen.filter((s) => s === "columns 4")).toHaveLength(1);
    expect(seen.slice(1).reduce((n, s) => n + Number(s.split(" ")[1]), 0)).toBe(4);
    expect(tail.truncated).toBe(true);
  });

  it("rejects a body that breaks off, after handing over the rows before the break", async () => {
    const rows: unknown[][] = [];
    const broken = body([DOC.slice(0, DOC.indexOf(",\n[3"))], new TypeError("network error"));
    await expect(readResult(broken, () => {}, (r) => rows.push(...r))).rejects.toThrow("network error");
    expect(rows).toEqual(ROWS.slice(0, 2));
  });

  it("rejects a body that ends cleanly but early", async () => {
    await expect(readResult(body([DOC.slice(0, DOC.indexOf("\n]"))]), () => {}, () => {})).rejects.toThrow(IncompleteResult);
  });
});
