import type { Me } from "./api";

/** Who is signed in (null before /me answered, or when nobody is). */
export const ctx: { me: Me | null } = { me: null };

export const isAdmin = (): boolean => ctx.me?.role === "admin";
