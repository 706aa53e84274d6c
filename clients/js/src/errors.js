// Errors the client throws. An ApiError carries the contract's error body
// (`statusCode`, `code`, `message`, `details`); a NetworkError means no
// answer came at all (offline, refused, timed out).

/** A non-2xx answer from the API, with the contract's error code. */
export class ApiError extends Error {
  /**
   * @param {{status: number, code: string, message?: string, details?: Array<{field: string, message: string}>,
   *          retryAfter?: number|null, body?: unknown}} init
   */
  constructor({ status, code, message, details, retryAfter = null, body = null }) {
    super(message || code);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
    this.body = body;
  }
}

/** The request got no answer: the network, a timeout, or an abort. */
export class NetworkError extends Error {
  constructor(message, cause) {
    super(message);
    this.name = 'NetworkError';
    if (cause !== undefined) this.cause = cause;
  }
}

/** True when `error` is an ApiError, of `code` when one is given. */
export function isApiError(error, code) {
  return error instanceof ApiError && (code === undefined || error.code === code);
}

// The code to report when the body is not the contract's (nginx's own
// answers while an upstream is down, a proxy's HTML page).
const FALLBACK_CODES = {
  400: 'VALIDATION_ERROR',
  401: 'UNAUTHORIZED',
  404: 'NOT_FOUND',
  405: 'METHOD_NOT_ALLOWED',
  409: 'EMAIL_TAKEN',
  412: 'VERSION_MISMATCH',
  413: 'PAYLOAD_TOO_LARGE',
  415: 'UNSUPPORTED_MEDIA_TYPE',
  429: 'RATE_LIMITED',
  502: 'UNAVAILABLE',
  503: 'UNAVAILABLE',
  504: 'UNAVAILABLE',
};

/** Builds the ApiError for a non-2xx answer from its status, body and Retry-After. */
export function apiErrorFrom(status, body, retryAfterHeader) {
  const retry = retryAfterHeader == null ? NaN : Number(retryAfterHeader);
  const retryAfter = Number.isFinite(retry) && retry >= 0 ? retry : null;
  if (body && typeof body === 'object' && typeof body.code === 'string') {
    return new ApiError({
      status,
      code: body.code,
      message: typeof body.message === 'string' ? body.message : body.code,
      details: Array.isArray(body.details) ? body.details : undefined,
      retryAfter,
      body,
    });
  }
  const code = FALLBACK_CODES[status] || 'INTERNAL';
  return new ApiError({ status, code, message: `HTTP ${status}`, retryAfter, body });
}
