// Splits a byte stream of newline-delimited JSON into complete lines as chunks arrive: a line
// may span chunks, a chunk may hold many lines, and multi-byte characters may be cut anywhere.

export class LineSplitter {
  private buffer = "";
  private readonly decoder = new TextDecoder();

  /** The complete lines in `chunk` (with what came before), without their newlines. */
  push(chunk: Uint8Array | string): string[] {
    this.buffer += typeof chunk === "string" ? chunk : this.decoder.decode(chunk, { stream: true });
    const lines = this.buffer.split("\n");
    this.buffer = lines.pop() ?? "";
    return lines.map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l)).filter((l) => l.trim() !== "");
  }

  /** What is left once the stream ended (a last line without its newline). */
  finish(): string[] {
    const rest = this.buffer + this.decoder.decode();
    this.buffer = "";
    return rest.trim() === "" ? [] : [rest];
  }
}

/** Reads an NDJSON response body, calling `onValue` with each parsed line as soon as it is complete. */
export async function readNdjson(body: ReadableStream<Uint8Array>, onValue: (value: unknown) => void): Promise<void> {
  const reader = body.getReader();
  const splitter = new LineSplitter();
  for (;;) {
    const { done, value } = await reader.read();
    const lines = done ? splitter.finish() : splitter.push(value);
    for (const line of lines) onValue(JSON.parse(line));
    if (done) return;
  }
}
