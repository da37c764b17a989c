// Package webhook sends tako's webhooks as the Standard Webhooks
// specification (https://www.standardwebhooks.com/) describes them: it
// signs and verifies messages, checks callback URLs and dials only
// addresses on the public internet, delivers one attempt and decides, as a
// pure function, whether and when to try again.
//
// The package keeps no state: the dispatcher stores messages and attempts
// and calls Deliver and Decide for each try.
package webhook
