export { type AuthorizedFetchOptions, authorizedFetch } from "./authorized-fetch.js";
export {
  type AuthorizationServerMetadata,
  type ClientAuthenticationMethod,
  createOAuthClient,
  DEFAULT_TIMEOUT_MS,
  type FetchLike,
  type OAuthClient,
  type OAuthClientOptions,
} from "./client.js";
export {
  type ClientCredentials,
  type ClientCredentialsOptions,
  createClientCredentials,
} from "./client-credentials.js";
export { createKeyring, type EncryptionKey, generateEncryptionKey, type Keyring } from "./encryption.js";
export {
  LoginError,
  type LoginErrorCode,
  LoginRequiredError,
  type LoginRequiredReason,
  type OAuthEndpoint,
  OAuthError,
  type OAuthErrorCode,
  OAuthResponseError,
  type OAuthResponseErrorCode,
  TokenDecryptionError,
} from "./errors.js";
export type { OAuthEvent, OAuthEventHook, TokenGrant } from "./events.js";
export {
  type BeginLoginOptions,
  type CompleteLoginOptions,
  createLogin,
  DEFAULT_PENDING_TTL_MS,
  type Login,
  type LoginOptions,
  type LoginResult,
  type LoginStart,
} from "./login.js";
export { codeChallenge, generateCodeVerifier } from "./pkce.js";
export {
  createSessionTokens,
  DEFAULT_SESSION_TTL_MS,
  type RevokeResult,
  type SessionTokens,
  type SessionTokensOptions,
} from "./sessions.js";
export {
  MAX_TOKEN_KEY_LENGTH,
  type TokenStore,
  type TokenStoreEntry,
  type TokenStoreSetOptions,
} from "./store/contract.js";
export { MemoryTokenStore, type MemoryTokenStoreOptions, memoryTokenStore } from "./store/memory.js";
export { DEFAULT_LOCK_TTL_MS, type GetAccessTokenOptions, type TokenSource } from "./token-source.js";
export {
  DEFAULT_ASSUMED_LIFETIME_MS,
  DEFAULT_REFRESH_MARGIN_MS,
  type Freshness,
  type IdTokenClaims,
  type TokenSet,
} from "./tokens.js";
export type { OAuthRetryOptions } from "./transport.js";
