// The API's shapes this UI reads (docs/openapi.json is the reference).

export type Network = "direct" | "ssh" | "private_endpoint";
export type SslMode = "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full";

export interface DiscoveryRun {
  id: number;
  state: string;
  started_at: number;
  finished_at?: number | null;
  relations?: number | null;
  message?: string | null;
  stage?: string | null;
  changed?: boolean | null;
}

export interface Alert {
  id: number;
  kind: string;
  subject: string;
  details: Record<string, unknown>;
  raised_at: number;
  cleared_at?: number | null;
}

export interface SshView {
  host: string;
  port: number;
  user: string;
  private_key_set: boolean;
  passphrase_set: boolean;
  host_key?: string | null;
  host_key_approved_at?: number | null;
  host_key_approved_by?: string | null;
  public_key?: string | null;
}

export interface SourceView {
  id: string;
  name: string;
  network: Network;
  host: string;
  port: number;
  database: string;
  user: string;
  sslmode: SslMode;
  sslrootcert?: string | null;
  sslcert?: string | null;
  sslkey_set: boolean;
  tls_server_name?: string | null;
  password_set: boolean;
  password_age_days?: number | null;
  password_rotation?: string | null;
  auth: "password" | "rds_iam";
  ssh?: SshView | null;
  discovery?: {
    interval_secs: number;
    next_due_at: number;
    failures: number;
    running: boolean;
    last?: DiscoveryRun | null;
  } | null;
  alerts?: Alert[];
  last_test?: {
    ok: boolean;
    tested_at: number;
    tested_by: string;
    failed?: string | null;
    message?: string | null;
  } | null;
  created_at: number;
  updated_at: number;
}

export interface PresentedHostKey {
  status: string;
  algorithm: string;
  fingerprint: string;
  public_key: string;
}

export interface Check {
  id: string;
  status: "pass" | "warn" | "fail" | "skip";
  summary: string;
  detail: string | null;
  fix: string | null;
  elapsed_ms: number;
  host_key?: PresentedHostKey | null;
}

export interface CatalogColumn {
  name: string;
  type: string;
  nullable: boolean;
  default: string | null;
  comment: string | null;
  identity?: string;
  generated?: { kind: string; expression: string };
}

export interface CatalogRelation {
  name: string;
  schema?: string;
  kind: string;
  owner: string;
  comment: string | null;
  row_estimate: number | null;
  size_bytes: number | null;
  selectable: boolean;
  columns_limited?: boolean;
  columns: CatalogColumn[];
  primary_key: string[] | null;
  unique: string[][];
  foreign_keys: { name: string; columns: string[]; ref_schema: string; ref_table: string; ref_columns: string[] }[];
  indexes: { name: string; columns: string[]; unique: boolean; primary?: boolean }[];
  partitions: CatalogRelation[];
  partition_bound?: string;
  partition_key?: string;
}

export interface CatalogSchema {
  name: string;
  owner: string;
  comment: string | null;
  usable?: boolean;
  relations: CatalogRelation[];
}

export interface Catalog {
  database: string;
  server_version: string;
  discovered_at: string;
  schemas: CatalogSchema[];
}

export interface CatalogSnapshot {
  snapshot: { id: number; discovered_at: number };
  catalog: Catalog;
}
