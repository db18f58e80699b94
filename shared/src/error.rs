//! Every way a request can fail, as the contract names it. [`crate::http::error_response`]
//! turns one into the HTTP answer; nothing else decides status codes.

/// A domain error. The `Display` text is the contract's `message`: a sentence a person can
/// act on, never holding a secret, a code or a full phone number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MfaError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("The request body is larger than 16 KiB.")]
    PayloadTooLarge,
    #[error("Sign in again: this request carries no valid user.")]
    Unauthenticated,
    #[error("This caller may not use this route.")]
    Forbidden,
    /// A change to the user's factors without a valid step-up proof (contract v2, "Step-up").
    #[error(
        "Verify with a code first: complete a sign-in challenge (or use a recovery code) and send its assertion in the MFA-Assertion header."
    )]
    StepUpRequired,
    #[error("There is no such route.")]
    RouteNotFound,
    #[error("This route does not accept that method.")]
    MethodNotAllowed,

    #[error(
        "Multi-factor authentication is not available to this application. Contact your customer success manager to have it made available."
    )]
    MfaNotAvailable,
    #[error(
        "The policy was changed by someone else (now version {current}). Reload it and apply your change again."
    )]
    VersionConflict { current: u64 },
    #[error("Multi-factor authentication is not enabled for this application.")]
    MfaDisabled,
    #[error("This application requires multi-factor authentication; it cannot be skipped.")]
    EnrollmentRequired,
    #[error("There is no such user in this application.")]
    UserNotFound,
    /// Contract v2: the policy's `factors` does not list this one (new bindings and
    /// challenges of a factor the user has not bound).
    #[error("This application does not allow {factor} as a second factor.")]
    FactorNotAllowed { factor: &'static str },

    #[error("The password is not correct.")]
    InvalidPassword { attempts_remaining: u32 },
    #[error("Too many wrong attempts. Wait before trying again.")]
    TooManyAttempts { retry_after: u64 },
    #[error("Verify your email address before adding multi-factor authentication.")]
    EmailNotVerified,
    #[error(
        "You already have multi-factor authentication; add or change phones from your settings."
    )]
    AlreadyEnrolled,

    #[error("{0}")]
    InvalidPhoneNumber(&'static str),
    #[error("Phone numbers from {country} cannot be used with this application.")]
    CountryNotAllowed { country: String },
    #[error(
        "This is a {kind} number, which cannot receive verification texts. Use a mobile number."
    )]
    UnsupportedNumberType { kind: &'static str },
    #[error("This phone number is already one of your verification phones.")]
    PhoneAlreadyEnrolled,
    #[error("This enrollment does not exist or has expired. Start again.")]
    EnrollmentNotFound,
    #[error("There is no such phone among your verification phones.")]
    PhoneNotFound,
    #[error("There is no such sign-in challenge, or it has expired. Start again.")]
    ChallengeNotFound,
    #[error("This user has no verification phone: set up multi-factor authentication first.")]
    NotEnrolled,
    #[error("You already have the most verification phones allowed ({max}). Remove one first.")]
    TooManyPhones { max: u32 },
    #[error(
        "This application requires multi-factor authentication: add another phone before removing your last one."
    )]
    LastPhoneRequired,
    #[error(
        "This application requires multi-factor authentication: add a phone or another authenticator app before removing your last factor."
    )]
    LastFactorRequired,
    #[error("You have no authenticator app set up.")]
    TotpNotFound,
    #[error(
        "An authenticator app's codes are not sent: type the code the app shows now, or start again."
    )]
    NoResend,
    #[error("Too many texts have been requested ({limit}). Wait before trying again.")]
    RateLimited {
        retry_after: u64,
        limit: &'static str,
    },
    #[error("The text message could not be sent. Check the number and try again.")]
    SmsSendFailed,

    #[error("The code is not correct.")]
    InvalidCode { attempts_remaining: u32 },
    #[error("The code has expired. Ask for a new one.")]
    CodeExpired,
    #[error("That is not possible at the {current} step: start again or go on from there.")]
    WrongStep { current: &'static str },
    #[error("A code was sent moments ago. Wait before asking for another.")]
    ResendTooSoon { retry_after: u64 },
    #[error("No more codes can be sent for this enrollment. Start again later.")]
    SendLimitReached { retry_after: u64 },

    #[error("This was changed by another request at the same moment. Try again.")]
    Conflict,
    #[error("The service is briefly unavailable. Try again.")]
    ServiceUnavailable { retry_after: u64 },
    #[error("Something went wrong on our side. Try again.")]
    Internal,
}

impl MfaError {
    /// The stable snake_case code of the contract.
    pub fn code(&self) -> &'static str {
        use MfaError::*;
        match self {
            InvalidRequest(_) => "invalid_request",
            PayloadTooLarge => "payload_too_large",
            Unauthenticated => "unauthenticated",
            Forbidden => "forbidden",
            StepUpRequired => "step_up_required",
            RouteNotFound => "not_found",
            MethodNotAllowed => "method_not_allowed",
            MfaNotAvailable => "mfa_not_available",
            VersionConflict { .. } => "version_conflict",
            MfaDisabled => "mfa_disabled",
            EnrollmentRequired => "enrollment_required",
            UserNotFound => "user_not_found",
            FactorNotAllowed { .. } => "factor_not_allowed",
            InvalidPassword { .. } => "invalid_password",
            TooManyAttempts { .. } => "too_many_attempts",
            EmailNotVerified => "email_not_verified",
            AlreadyEnrolled => "already_enrolled",
            InvalidPhoneNumber(_) => "invalid_phone_number",
            CountryNotAllowed { .. } => "country_not_allowed",
            UnsupportedNumberType { .. } => "unsupported_number_type",
            PhoneAlreadyEnrolled => "phone_already_enrolled",
            EnrollmentNotFound => "enrollment_not_found",
            PhoneNotFound => "phone_not_found",
            ChallengeNotFound => "challenge_not_found",
            NotEnrolled => "not_enrolled",
            TooManyPhones { .. } => "too_many_phones",
            LastPhoneRequired => "last_phone_required",
            LastFactorRequired => "last_factor_required",
            TotpNotFound => "totp_not_found",
            NoResend => "wrong_step",
            RateLimited { .. } => "rate_limited",
            SmsSendFailed => "sms_send_failed",
            InvalidCode { .. } => "invalid_code",
            CodeExpired => "code_expired",
            WrongStep { .. } => "wrong_step",
            ResendTooSoon { .. } => "resend_too_soon",
            SendLimitReached { .. } => "send_limit_reached",
            Conflict => "conflict",
            ServiceUnavailable { .. } => "service_unavailable",
            Internal => "internal_error",
        }
    }

    /// The HTTP status of the contract.
    pub fn status(&self) -> u16 {
        use MfaError::*;
        match self {
            InvalidRequest(_) | InvalidPhoneNumber(_) | InvalidCode { .. } => 400,
            Unauthenticated | InvalidPassword { .. } => 401,
            Forbidden
            | StepUpRequired
            | MfaNotAvailable
            | MfaDisabled
            | EnrollmentRequired
            | FactorNotAllowed { .. } => 403,
            RouteNotFound | UserNotFound | EnrollmentNotFound | PhoneNotFound
            | ChallengeNotFound | TotpNotFound => 404,
            MethodNotAllowed => 405,
            EmailNotVerified
            | AlreadyEnrolled
            | PhoneAlreadyEnrolled
            | WrongStep { .. }
            | TooManyPhones { .. }
            | LastPhoneRequired
            | LastFactorRequired
            | NoResend
            | NotEnrolled
            | Conflict => 409,
            CodeExpired => 410,
            VersionConflict { .. } => 412,
            PayloadTooLarge => 413,
            CountryNotAllowed { .. } | UnsupportedNumberType { .. } => 422,
            TooManyAttempts { .. }
            | RateLimited { .. }
            | ResendTooSoon { .. }
            | SendLimitReached { .. } => 429,
            Internal => 500,
            SmsSendFailed => 502,
            ServiceUnavailable { .. } => 503,
        }
    }

    /// Seconds to wait, for every 429 and 503 (`Retry-After` and `retry_after`).
    pub fn retry_after(&self) -> Option<u64> {
        use MfaError::*;
        match self {
            TooManyAttempts { retry_after }
            | RateLimited { retry_after, .. }
            | ResendTooSoon { retry_after }
            | SendLimitReached { retry_after }
            | ServiceUnavailable { retry_after } => Some(*retry_after),
            _ => None,
        }
    }

    /// `attempts_remaining`, where the contract names it.
    pub fn attempts_remaining(&self) -> Option<u32> {
        match self {
            MfaError::InvalidPassword { attempts_remaining }
            | MfaError::InvalidCode { attempts_remaining } => Some(*attempts_remaining),
            _ => None,
        }
    }
}

/// A port failed (DynamoDB, SNS, SES, Secrets Manager, the OS RNG). `.0`, the detail, is for
/// logs; `.1` says what kind of failure it was, which decides whether work may be undone.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PortError(pub String, pub PortErrorKind);

/// What a caller may conclude from a [`PortError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortErrorKind {
    /// A known failure: the other side did nothing (a connect failure, a service's refusal).
    Failed,
    /// The request was sent and its answer was lost (a timeout or a broken response after
    /// dispatch), so the other side may have acted on it. A caller that would undo or refund
    /// work on failure must not do so then (an SNS text that may have been delivered counts
    /// as sent).
    OutcomeUnknown,
    /// The service refused the request because the account is over its rate quota (SNS's
    /// `Throttling`), after the SDK's own retries. Nothing was done, as with
    /// [`PortErrorKind::Failed`], but the request itself was fine: trying again shortly is the
    /// remedy, so it is answered `503` with `Retry-After`, not as a bad request.
    Throttled,
}

impl PortError {
    /// A failure whose outcome is known: the other side did nothing.
    pub fn new(e: impl std::fmt::Display) -> PortError {
        PortError(e.to_string(), PortErrorKind::Failed)
    }

    /// A request that was sent but whose answer was lost: it may have taken effect.
    pub fn outcome_unknown(e: impl std::fmt::Display) -> PortError {
        PortError(e.to_string(), PortErrorKind::OutcomeUnknown)
    }

    /// A request the service refused for a rate quota: nothing was done; retry shortly.
    pub fn throttled(e: impl std::fmt::Display) -> PortError {
        PortError(e.to_string(), PortErrorKind::Throttled)
    }

    /// Whether the request may have taken effect (see [`PortError::outcome_unknown`]).
    pub fn is_outcome_unknown(&self) -> bool {
        self.1 == PortErrorKind::OutcomeUnknown
    }

    /// Whether the service throttled the request (see [`PortError::throttled`]).
    pub fn is_throttled(&self) -> bool {
        self.1 == PortErrorKind::Throttled
    }
}

impl From<PortError> for MfaError {
    /// A store failure: logged by the caller's handler, answered as retryable.
    fn from(e: PortError) -> MfaError {
        tracing::error!(error = %e.0, "dependency failed");
        MfaError::ServiceUnavailable { retry_after: 1 }
    }
}

impl From<getrandom::Error> for MfaError {
    fn from(e: getrandom::Error) -> MfaError {
        tracing::error!(error = %e, "the OS random source failed");
        MfaError::Internal
    }
}
