## Notifications from the insurer's systems (POST /api/v1/notifications), as sent inside the
## 24-hour window; outside it the kind's template goes instead. Arguments are the request's
## data fields (policy numbers are masked like everywhere in chat).
notify-claim-update = Your claim { $claim_number } is now: { $claim_stage }.
notify-premium-due = The premium of { $premium_amount } for policy { $policy_number } is due on { $due_date }.
notify-policy-issued = Your policy { $policy_number } ({ $plan }) has been issued. Status: { $policy_status }.
