// Search over every relation of a catalog as the user types: names are lowercased once when
// the index is built, so a keystroke is one pass of substring tests over flat arrays — and
// only over the previous query's matches when the new query contains it (typing on), since
// whatever contains the longer text contains the shorter.

export interface Searchable {
  schema: string;
  name: string;
}

export interface Hit<T> {
  item: T;
  /** Lower is better: 0 exact name, 1 name prefix, 2 name contains, 3 schema.name contains. */
  rank: number;
}

export class SearchIndex<T extends Searchable> {
  private readonly items: T[];
  private readonly names: string[];
  private readonly qualified: string[];
  /** The last query and every relation it matched (not only the hits handed out), in order. */
  private lastQuery = "";
  private lastMatches: number[] | null = null;

  constructor(items: T[]) {
    this.items = items;
    this.names = items.map((i) => i.name.toLowerCase());
    this.qualified = items.map((i) => `${i.schema}.${i.name}`.toLowerCase());
  }

  get size(): number {
    return this.items.length;
  }

  /** Relations whose name (or `schema.name`) contains the query, best first, at most `limit`. */
  search(query: string, limit = 500): { hits: Hit<T>[]; total: number } {
    const q = query.trim().toLowerCase();
    if (!q) return { hits: [], total: 0 };
    const buckets: number[][] = [[], [], [], []];
    const dotted = q.includes(".");
    const narrowing = this.lastMatches !== null && q.includes(this.lastQuery);
    const candidates = narrowing ? this.lastMatches! : null;
    const count = candidates ? candidates.length : this.names.length;
    const matches: number[] = [];
    for (let k = 0; k < count; k++) {
      const i = candidates ? candidates[k]! : k;
      const name = this.names[i]!;
      let rank = -1;
      if (!dotted) {
        if (name === q) rank = 0;
        else if (name.startsWith(q)) rank = 1;
        else if (name.includes(q)) rank = 2;
        else if (this.qualified[i]!.includes(q)) rank = 3;
      } else if (this.qualified[i] === q) {
        rank = 0;
      } else if (this.qualified[i]!.startsWith(q)) {
        rank = 1;
      } else if (this.qualified[i]!.includes(q)) {
        rank = 3;
      }
      if (rank < 0) continue;
      buckets[rank]!.push(i);
      matches.push(i);
    }
    this.lastQuery = q;
    this.lastMatches = matches;
    const total = buckets.reduce((n, b) => n + b.length, 0);
    const hits: Hit<T>[] = [];
    for (let rank = 0; rank < buckets.length && hits.length < limit; rank++) {
      for (const i of buckets[rank]!) {
        if (hits.length >= limit) break;
        hits.push({ item: this.items[i]!, rank });
      }
    }
    return { hits, total };
  }
}
