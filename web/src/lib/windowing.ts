// Which rows of a long list are on screen: the grid and the schema tree render only those
// (plus a few either side), so 10,000 rows cost as much as 40.

export interface RowWindow {
  /** First row to render (inclusive). */
  start: number;
  /** One past the last row to render. */
  end: number;
  /** Pixels above the first rendered row (its offset in the scrolled content). */
  offset: number;
  /** Height of the whole content, in pixels. */
  total: number;
}

export function rowWindow(
  scrollTop: number,
  viewport: number,
  rowHeight: number,
  count: number,
  overscan = 8,
): RowWindow {
  const total = count * rowHeight;
  if (count <= 0 || rowHeight <= 0) return { start: 0, end: 0, offset: 0, total: Math.max(total, 0) };
  const top = Math.min(Math.max(scrollTop, 0), Math.max(total - viewport, 0));
  const first = Math.floor(top / rowHeight);
  const visible = Math.ceil(Math.max(viewport, 0) / rowHeight) + 1;
  const start = Math.max(first - overscan, 0);
  const end = Math.min(first + visible + overscan, count);
  return { start, end, offset: start * rowHeight, total };
}
