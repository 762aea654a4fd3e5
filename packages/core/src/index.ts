// Clocks, and whole milliseconds for the platform's timers, in every package that keeps time.
export { checkedClock, monotonicClock, timerDelay, timerOutlivesRequests } from "./clock.js";
// A request body's content coding, decoded alike by every adapter.
export { type ContentEncodingValue, contentCodings, decodeContent } from "./content-coding.js";
export type { ContentParts } from "./crypto/port.js";
// Byte encodings without `Buffer`, shared with the packages that must run on every runtime too.
export { decodeBase64, encodeBase64, encodeHex, utf8 } from "./encoding.js";
export {
  BodyError,
  type BodyErrorCode,
  brandErrorClass,
  driverErrorSummary,
  IdempotencyError,
  type IdempotencyErrorCode,
  InterlockConfigError,
  InterlockError,
  PROBLEM_CONTENT_TYPE,
  type ProblemDetails,
  RecordTooLargeError,
  StoreUnavailableError,
  untrustedCertificate,
  WEBHOOK_ERROR_CODES,
  type WebhookErrorCode,
  WebhookPayloadError,
  WebhookVerificationError,
  webhookErrorStatus,
} from "./errors.js";
export {
  ANONYMOUS_SCOPE_WARNING,
  type CorrelatedEvent,
  type EventHook,
  emit,
  HOOK_FAILED_WARNING,
  type IdempotencyEvent,
  type IdempotencyEventBase,
  type IdempotencyRejectedEvent,
  type InterlockEvent,
  monotonicNow,
  NO_PRINCIPAL_WARNING,
  SHARED_DELIVERY_KEYS_WARNING,
  type WebhookDuplicateEvent,
  type WebhookEvent,
  type WebhookHandlerFailedEvent,
  type WebhookProcessedEvent,
  type WebhookRejectedEvent,
  type WebhookStoreUnavailableEvent,
  type WebhookVerifiedEvent,
} from "./events.js";
export { type HeaderReader, type HeadersInput, headerReader, trimOws } from "./headers.js";
export {
  announcesBody,
  BodyCollector,
  bodyLimitOption,
  DEFAULT_REQUEST_BODY_LIMIT,
  declaredTooLarge,
  forEachHeader,
  type HttpResponse,
  jsonResponse,
  type NodeRequestHead,
  type NodeRequestState,
  type NodeRequestStream,
  type NodeResponseSink,
  problemResponse,
  readRequestBody,
  requestCutOff,
  sendOnNode,
  writeHeadHeaders,
} from "./http.js";
export type { WaitOptions } from "./idempotency/claim.js";
export {
  type CachePolicy,
  createIdempotency,
  DEFAULT_IDEMPOTENCY_LOCK_TTL_MS,
  DEFAULT_IDEMPOTENCY_RENEWAL_MAX_MS,
  DEFAULT_IDEMPOTENCY_RETENTION_MS,
  IDEMPOTENCY_OPTION_NAMES,
  type IdempotencyDecision,
  type IdempotencyEngine,
  type IdempotencyErrorDecision,
  type IdempotencyOptions,
  type IdempotencyReplayDecision,
  type IdempotencyRequest,
  type IdempotencyRespondDecision,
  type IdempotencyTicket,
  IN_FLIGHT_RETRY_AFTER_SECONDS,
  type LeaseRenewal,
  type Principal,
} from "./idempotency/engine.js";
export { MAX_IDEMPOTENCY_KEY_LENGTH, parseIdempotencyKey } from "./idempotency/key.js";
export {
  type CapturedResponse,
  DEFAULT_REPLAY_HEADERS,
  type FetchHeadersLike,
  hasNoContent,
} from "./idempotency/response.js";
export { type IdempotentRun, type RunIdempotentOptions, runIdempotent } from "./idempotency/run.js";
// One pass of each middleware per request, in every adapter that mounts as one.
export { passedBefore } from "./once.js";
// Checked option names: a misspelt option is refused at set-up, never silently ignored.
export { assertOptionNames, type OptionNameList, optionNames } from "./option-names.js";
export { cryptoRuntime } from "./runtime.js";
export type {
  ClaimOptions,
  ClaimResult,
  CompleteOptions,
  InterlockStore,
  StoredRecord,
  StoredResponse,
} from "./store/contract.js";
export { inTurn } from "./store/in-turn.js";
export { DEFAULT_EVICT_AFTER_MS, MemoryStore, type MemoryStoreOptions, memoryStore } from "./store/memory.js";
export {
  POSTGRES_READY_SQL,
  type PostgresStatementSetup,
  postgresReady,
  postgresSerializationFailure,
  postgresSessionEnded,
  postgresSetupMistake,
  postgresSqlState,
} from "./store/postgres-errors.js";
export {
  executePostgres,
  migratePostgres,
  type PostgresCancel,
  PostgresDeadline,
  type PostgresQuery,
  type PostgresQueryable,
  type PostgresResult,
} from "./store/postgres-execute.js";
export {
  isRedisCluster,
  neededRedisAcl,
  type RedisNeeds,
  redisClientKeyPrefix,
  redisNeeds,
  redisReplyError,
  redisUnavailableError,
  watchRedisNodes,
} from "./store/redis-errors.js";
export {
  DEADLINE_MARGIN_MS,
  DEFAULT_REFRESH_AFTER_MS,
  deadlineStoreCall,
  type ProbeReply,
  ServerClock,
  type ServerClockOptions,
  type ServerTimedReply,
  type TimeProbe,
} from "./store/server-clock.js";
export {
  assertClaim,
  assertComplete,
  assertKey,
  boundedStoreCall,
  choiceOption,
  HTTP_TOKEN,
  MAX_KEY_LENGTH,
  MAX_TIMEOUT_MS,
  positiveIntegerOption,
  refuseTransaction,
  responseSize,
  timeoutOption,
  unstorable,
} from "./store/validate.js";
// Bodies on web standards, shared by the adapters that run on every runtime.
export {
  declaredLength,
  isWebResponse,
  pathAndQuery,
  type RecordedResponse,
  type Recording,
  type ResponseSettlement,
  readStreamUpTo,
  readyLength,
  recordBody,
  recordResponse,
  type SettledBody,
  type SettledResponse,
  settleAtEnd,
  settleResponseAtEnd,
} from "./web-body.js";
export { type RawBody, rawBodyBytes } from "./webhooks/body.js";
export type { WebhookSecret } from "./webhooks/keys.js";
export {
  createWebhookReceiver,
  DEFAULT_WEBHOOK_LOCK_TTL_MS,
  DEFAULT_WEBHOOK_RETENTION_MS,
  type DeliveryClaim,
  deliveryKey,
  type EarlyRefusalCode,
  WEBHOOK_RECEIVER_OPTION_NAMES,
  type WebhookBodyReader,
  type WebhookDecision,
  type WebhookDuplicateDecision,
  type WebhookErrorDecision,
  type WebhookReceipt,
  type WebhookReceiver,
  type WebhookReceiverOptions,
  type WebhookRespondDecision,
  type WebhookTicket,
} from "./webhooks/receiver.js";
export { WebhookRefusal } from "./webhooks/refusal.js";
export type {
  DeliveryFields,
  HashName,
  KeyMaterial,
  MadeSignature,
  ParsedDelivery,
  SignatureCandidate,
  TimestampUnit,
  WebhookScheme,
} from "./webhooks/scheme.js";
export * from "./webhooks/schemes/index.js";
export { type SignedWebhook, type SignWebhookOptions, signWebhook, signWebhookSync } from "./webhooks/sign.js";
export { VerifiedWebhook } from "./webhooks/verified.js";
export {
  createWebhookVerifier,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_MAX_SIGNATURES,
  DEFAULT_TOLERANCE_SECONDS,
  MAX_TOLERANCE_SECONDS,
  verifyWebhook,
  type WebhookVerifier,
  type WebhookVerifierOptions,
} from "./webhooks/verify.js";
