import { describe, expect, it } from "vitest";
import { SearchIndex } from "./search";

const rel = (schema: string, name: string) => ({ schema, name });

describe("SearchIndex", () => {
  const index = new SearchIndex([
    rel("public", "orders"),
    rel("public", "order_items"),
    rel("analytics", "daily_orders"),
    rel("public", "customers"),
    rel("Sales", "Orders"),
  ]);

  it("ranks the exact name, then prefixes, then substrings, case-insensitively", () => {
    const { hits, total } = index.search("ORDERS");
    expect(total).toBe(3);
    expect(hits.map((h) => `${h.item.schema}.${h.item.name}:${h.rank}`)).toEqual([
      "public.orders:0",
      "Sales.Orders:0",
      "analytics.daily_orders:2",
    ]);
  });

  it("matches schema-qualified queries", () => {
    expect(index.search("public.order").hits.map((h) => h.item.name)).toEqual(["orders", "order_items"]);
    expect(index.search("analytics.").hits.map((h) => h.item.name)).toEqual(["daily_orders"]);
    expect(index.search("sales").hits.map((h) => h.item.name)).toEqual(["Orders"]);
  });

  it("finds nothing for an empty query or a miss", () => {
    expect(index.search("   ")).toEqual({ hits: [], total: 0 });
    expect(index.search("invoices").total).toBe(0);
  });

  it("caps the hits but counts them all, over 10,000 relations", () => {
    const big = new SearchIndex(Array.from({ length: 12_000 }, (_, i) => rel(`s${i % 10}`, `table_${i}`)));
    const { hits, total } = big.search("table_1", 50);
    expect(hits).toHaveLength(50);
    expect(total).toBe(1 + 10 + 100 + 1000 + 2000);
    expect(hits[0]!.item.name).toBe("table_1");
    expect(hits[0]!.rank).toBe(0);
    expect(big.search("table_11999").hits.map((h) => h.item.name)).toEqual(["table_11999"]);
  });

  it("answers as a fresh index does while the query grows, shrinks and changes", () => {
    const items = Array.from({ length: 3_000 }, (_, i) => rel(`cat_${String(i % 7).padStart(3, "0")}`, `t_${String(i).padStart(4, "0")}`));
    items.push(rel("Mixed", "T_0042"), rel("t_0042", "other"));
    const typed = new SearchIndex(items);
    const queries = ["t", "t_", "t_0", "t_00", "t_004", "t_0042", "t_004", "t_0", "", "cat_003", "cat_003.", "cat_003.t_1", "at_003.t_1", "T_0042", "t_0042.", "x", "xy", "t"];
    for (const q of queries) {
      const fresh = new SearchIndex(items).search(q, 100);
      const got = typed.search(q, 100);
      expect(got.total, q).toBe(fresh.total);
      expect(got.hits.map((h) => `${h.item.schema}.${h.item.name}:${h.rank}`), q).toEqual(fresh.hits.map((h) => `${h.item.schema}.${h.item.name}:${h.rank}`));
    }
  });
});
