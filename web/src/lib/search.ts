// Search over every relation of a catalog as the user types: names are lowercased once when
// the index is built, so a keystroke is one pass of substring tests over flat arrays.

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
    for (let i = 0; i < this.names.length; i++) {
      const name = this.names[i]!;
      if (!dotted) {
        if (name === q) buckets[0]!.push(i);
        else if (name.startsWith(q)) buckets[1]!.push(i);
        else if (name.includes(q)) buckets[2]!.push(i);
        else if (this.qualified[i]!.includes(q)) buckets[3]!.push(i);
      } else if (this.qualified[i] === q) {
        buckets[0]!.push(i);
      } else if (this.qualified[i]!.startsWith(q)) {
        buckets[1]!.push(i);
      } else if (this.qualified[i]!.includes(q)) {
        buckets[3]!.push(i);
      }
    }
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
