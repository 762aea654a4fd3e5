// Types for bearer.mjs, for the TypeScript examples (NestJS) that import it.

/** The token of an `Authorization: Bearer <token>` value read strictly, or undefined. */
export function bearerToken(header: string | null | undefined): string | undefined;
