import { describe, expect, it } from "vitest";
import { offsetOfPosition } from "./position";

describe("offsetOfPosition", () => {
  it("maps 1-based character positions to string offsets", () => {
    expect(offsetOfPosition("SELECT * FROM nope", 15)).toBe(14);
    expect(offsetOfPosition("SELECT 1", 1)).toBe(0);
  });

  it("counts a character outside the BMP once", () => {
    const sql = "SELECT '😀', nope";
    // P = 8 is the quote, 9 the emoji, 10 the quote, 11 the comma, 12 the space, 13 "nope".
    expect(offsetOfPosition(sql, 13)).toBe(sql.indexOf("nope"));
  });

  it("clamps to the text", () => {
    expect(offsetOfPosition("abc", 99)).toBe(3);
    expect(offsetOfPosition("abc", 0)).toBe(0);
  });
});
