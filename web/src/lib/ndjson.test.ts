import { describe, expect, it } from "vitest";
import { LineSplitter, readNdjson } from "./ndjson";

describe("LineSplitter", () => {
  it("returns complete lines and keeps the rest", () => {
    const s = new LineSplitter();
    expect(s.push('{"a":1}\n{"b"')).toEqual(['{"a":1}']);
    expect(s.push(':2}\n\n{"c":3}\n')).toEqual(['{"b":2}', '{"c":3}']);
    expect(s.finish()).toEqual([]);
  });

  it("joins a multi-byte character cut between chunks", () => {
    const bytes = new TextEncoder().encode('{"name":"żółw"}\n');
    const s = new LineSplitter();
    const out: string[] = [];
    for (let i = 0; i < bytes.length; i++) out.push(...s.push(bytes.slice(i, i + 1)));
    expect(out).toEqual(['{"name":"żółw"}']);
  });

  it("hands out a last line without a newline at the end", () => {
    const s = new LineSplitter();
    expect(s.push('{"a":1}\r\n{"b":2}')).toEqual(['{"a":1}']);
    expect(s.finish()).toEqual(['{"b":2}']);
  });
});

describe("readNdjson", () => {
  it("parses each line of a stream as it completes", async () => {
    const chunks = ['{"id":"dns"', ',"status":"pass"}\n{"id":"tcp","status":"fail"}\n{"summary":{"ok":false}}'];
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        for (const chunk of chunks) c.enqueue(new TextEncoder().encode(chunk));
        c.close();
      },
    });
    const seen: unknown[] = [];
    await readNdjson(body, (v) => seen.push(v));
    expect(seen).toEqual([{ id: "dns", status: "pass" }, { id: "tcp", status: "fail" }, { summary: { ok: false } }]);
  });

  it("fails on a line that is not JSON", async () => {
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode("<html>\n"));
        c.close();
      },
    });
    await expect(readNdjson(body, () => {})).rejects.toThrow();
  });
});
