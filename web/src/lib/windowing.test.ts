import { describe, expect, it } from "vitest";
import { rowWindow } from "./windowing";

describe("rowWindow", () => {
  it("renders the visible rows and the overscan at the top", () => {
    expect(rowWindow(0, 300, 30, 10_000, 5)).toEqual({ start: 0, end: 16, offset: 0, total: 300_000 });
  });

  it("follows the scroll position", () => {
    const w = rowWindow(30_000, 300, 30, 10_000, 5);
    expect(w.start).toBe(995);
    expect(w.end).toBe(1016);
    expect(w.offset).toBe(995 * 30);
  });

  it("stops at the last row however far it is scrolled", () => {
    const w = rowWindow(10_000_000, 300, 30, 10_000, 5);
    expect(w.end).toBe(10_000);
    expect(w.start).toBeLessThan(10_000 - 10);
    expect(w.total).toBe(300_000);
  });

  it("handles empty and short lists", () => {
    expect(rowWindow(0, 300, 30, 0)).toEqual({ start: 0, end: 0, offset: 0, total: 0 });
    expect(rowWindow(500, 300, 30, 3, 2)).toEqual({ start: 0, end: 3, offset: 0, total: 90 });
  });

  it("never renders more than a screen and the overscan", () => {
    for (const top of [0, 123, 4567, 299_700]) {
      const w = rowWindow(top, 600, 24, 10_000, 10);
      expect(w.end - w.start).toBeLessThanOrEqual(Math.ceil(600 / 24) + 1 + 20);
    }
  });
});
