## Shared
common-sorry = Sorry, our system is not responding right now. Please try again in a little while.
btn-retry = Try again
btn-another = Another claim

## Menu
menu-welcome = Welcome! How can I help you today?
menu-list-button = Choose an option
menu-section-policy = My policies
menu-section-more = More
menu-policy = Policy details
menu-policy-desc = Plan, status, sum assured and next due date
menu-premium = Pay premium
menu-premium-desc = Amount due, due date and payment link
menu-claim = Claim status
menu-claim-desc = Where your claim is and what is pending
menu-my-claims = My open claims
menu-my-claims-desc = Claims still in progress, and what is pending
menu-document = Policy document
menu-document-desc = A link to download your policy document
menu-agent = Talk to an agent
menu-agent-desc = Chat with a person from our team
menu-language = Change language
menu-language-desc = English, हिन्दी, தமிழ்
menu-preferences = Message settings
menu-preferences-desc = Offers, or stop all messages
menu-help = Help
menu-help-desc = What I can do for you

## Language
language-choose = Please choose your language.
language-en = English
language-hi = हिन्दी
language-ta = தமிழ்
language-set = Done. I will write to you in English.

## Help
help-text = I can show your policy details and document, premium due, your open claims and the status of a claim. Type "menu" at any time to see the options, "agent" to talk to a person, or "stop" to stop messages.

## Hand-off
handoff-connecting = I'm connecting you to our team. An agent will reply here shortly.
handoff-after-hours = Our team answers { $hours }. It is outside those hours now, so an agent will reply from { $next }. Your request stays in the queue; type "stop" at any time to stop messages.

## Consent
optout-confirmed = You will no longer receive messages from us, except essential updates on claims you filed. Send START at any time to resume.
optin-confirmed = Welcome back! You will receive policy, premium and claim updates again.
prefs-choose = Your message settings: you receive updates on your policies, premiums and claims. What would you like to change?
prefs-offers = Get offers
prefs-stop = Stop all messages
prefs-offers-on = Thank you. We will send you offers, at most 2 messages a week. Reply STOP at any time to stop.
prefs-offers-ask = May we send you offers on WhatsApp: new insurance plans, renewal discounts and add-ons? At most 2 messages a week. You can send STOP at any time to stop them.
prefs-yes = Yes, send offers
prefs-no = No, thanks
prefs-offers-off = Understood: no offers. You will still get updates on your policies, premiums and claims.

## Identity
identity-ask-policy = To keep your data safe, please type your policy number.
identity-bad-policy = That does not look like a policy number. It has 6 to 20 letters or digits, for example 12345678.
identity-ask-dob = Thank you. Now please type the policy holder's date of birth (DD/MM/YYYY).
identity-bad-dob = Please type the date of birth as DD/MM/YYYY, for example 15/08/1980.
identity-mismatch = Sorry, those details do not match our records.
identity-locked = For your security, verification is locked for a while after several attempts. Our team can help you.

## Policy
policy-choose = You have { $policy_count } policies. Which one would you like to see?
policy-list-button = Choose policy
policy-row-title = { $plan }
policy-row-desc = Policy { $policy_number }
policy-details = Policy { $policy_number }: { $plan }
    Type: { $policy_type }
    Status: { $policy_status }
    Sum assured: { $sum_assured }
    Next premium due: { $next_due_date }
policy-none = I could not find a policy linked to your details.
btn-premium = Premium due
btn-document = Policy document

## Policy document
document-choose-policy = Which policy's document would you like?
policy-document = Here is the document of policy { $policy_number } ({ $plan }):
    { $document_url }
policy-document-caption = Policy schedule of { $policy_number } ({ $plan })
policy-document-sent = Above is the schedule of policy { $policy_number } ({ $plan }) as a PDF. Keep it for your records.
policy-no-document = We do not have a digital copy of policy { $policy_number } ({ $plan }) on file yet. Our team can send it to you.

## Claim
claim-ask-number = Please type your claim number, for example CLM-123456.
claim-bad-number = A claim number looks like CLM-123456. Please check and type it again.
claim-status = Claim { $claim_number }: { $claim_stage } (updated { $claim_updated_date }).
    { $pending_documents ->
        [0] No documents are pending.
        [one] One document is pending.
       *[other] { $pending_documents } documents are pending.
    }
claim-letter-caption = Letter on claim { $claim_number }: { $claim_stage }
claim-not-found = I could not find claim { $claim_number }.
btn-my-claims = My open claims
btn-claim-number = Enter claim number

## Open claims
claims-choose = You have { $claim_count } open claims. Which one would you like to see?
claims-list-button = Choose claim
claims-row-title = { $claim_number }
claims-row-desc = { $claim_stage } · updated { $claim_updated_date }
claims-none-open = You have no open claims on your policies. If you have a claim number, I can look it up.

## Premium
premium-choose-policy = Which policy would you like to pay for?
premium-due = Premium of { $premium_amount } for policy { $policy_number } is due on { $due_date }.
    Pay securely here: { $pay_link }
btn-paid = I have paid
btn-remind = Remind me later
premium-reminder-set = Okay, I will remind you on { $remind_date }.
premium-already-paid = Thank you! Payments can take up to 2 working days to show. If you paid earlier than that, our team can check it for you.
premium-not-due = No premium is due on this policy right now.
reminder-pay-link = Pay now: { $pay_link }

# OTP
btn-send-code = Send me a code
btn-use-dob = Use date of birth
identity-otp-sent = We have sent a code to the mobile number registered on this policy. Please type the code here. Never share it with anyone, not even with us on a call.
identity-otp-bad-code = Please type only the digits of the code, for example 123456.
identity-otp-wrong = That code is not right. Please check it and type it again, or ask for a new code.
identity-otp-expired = That code has expired. I can send you a new one.
identity-otp-limited = Too many codes have been asked for just now. Please try again later, or verify with the date of birth.
identity-otp-unavailable = Sorry, we cannot send a code right now. You can verify with the policy holder's date of birth instead.
# issue 21: cancel
cancel-done = Cancelled. Here is the menu again. (To stop all messages from us, send STOP.)

# issue 21: data values. The insurer's codes as policyholders read them: value-<slot>-<code>
# (underscores as hyphens). `flows check` wants every code of every kind in every language; a
# code the insurer sends that is not listed here is shown as sent.
value-policy-status-active = Active
value-policy-status-grace = In grace period
value-policy-status-lapsed = Lapsed
value-policy-status-matured = Matured
value-policy-status-expired = Expired
value-policy-status-cancelled = Cancelled
value-policy-status-surrendered = Surrendered
value-claim-stage-intimated = Intimated
value-claim-stage-documents-pending = Documents pending
value-claim-stage-under-review = Under review
value-claim-stage-approved = Approved
value-claim-stage-settled = Settled
value-claim-stage-rejected = Rejected
value-claim-stage-closed = Closed
value-policy-type-health = Health
value-policy-type-motor = Motor
value-policy-type-life = Life
value-policy-type-travel = Travel
value-policy-type-home = Home
value-policy-type-other = Other

## Claim intimation and pending documents (issue 18)
menu-claim-new = Report a claim
menu-claim-new-desc = Tell us about an accident, theft, illness or other loss
intimate-choose-policy = Which policy is the claim on?
intimate-what = What happened? (policy { $policy_number }, { $plan })
intimate-loss-button = What happened
intimate-loss-row = { $loss_type }
intimate-when = When did it happen? Please type the date, for example 15/01/2026.
intimate-bad-date = Please type a date that has already passed, for example 15/01/2026.
intimate-describe = Please describe briefly what happened, in a sentence or two.
intimate-bad-description = Please write between 10 and 500 characters about what happened.
intimate-files = Please send photos of the damage and any bills or reports, up to 10 files. Tap Done when you have sent everything, or if you have none.
intimate-summary = Please check your claim:
    Policy: { $policy_number } ({ $plan })
    What happened: { $loss_type }
    When: { $loss_date }
    Description: { $loss_description }
    Files: { $claim_files }
    Shall I register it?
intimate-done = Your claim has been registered. Your claim number is { $claim_number }. Our claims team will contact you; please keep this number for any question about the claim.
btn-done = Done
btn-confirm = Register claim
btn-start-again = Change details
btn-send-documents = Send documents
docs-send = Please send the pending documents for claim { $claim_number } as photos or PDF files, up to 10. Tap Done when you have sent everything.
docs-attached = Thank you. { $documents_attached ->
        [one] 1 file was
       *[other] { $documents_attached } files were
    } added to claim { $claim_number }. Our claims team will review them.
value-loss-type-accident = Accident
value-loss-type-theft = Theft
value-loss-type-hospitalisation = Hospitalisation
value-loss-type-illness = Illness
value-loss-type-fire = Fire
value-loss-type-flood = Flood
value-loss-type-death = Death
value-loss-type-disability = Disability
value-loss-type-baggage-loss = Baggage loss
value-loss-type-trip-cancellation = Trip cancellation
value-loss-type-other = Something else
