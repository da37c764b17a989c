package jobs

// IdempotencyConflictMessage is the client-safe message of the ECONFLICT
// a submission gets when its idempotency key was used before with a
// different payload: the original's wording, which its clients match.
const IdempotencyConflictMessage = "Idempotency key reused with different payload"
