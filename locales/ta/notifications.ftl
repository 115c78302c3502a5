## காப்பீட்டு நிறுவனத்தின் அமைப்புகளிலிருந்து வரும் அறிவிப்புகள் (POST /api/v1/notifications), 24 மணி நேரச் சாளரத்திற்குள்.
notify-claim-update = உங்கள் க்ளைம் { $claim_number } இப்போது இந்த நிலையில் உள்ளது: { $claim_stage }.
notify-premium-due = பாலிசி { $policy_number } க்கான { $premium_amount } பிரீமியம் { $due_date } அன்று செலுத்த வேண்டும்.
notify-policy-issued = உங்கள் பாலிசி { $policy_number } ({ $plan }) வழங்கப்பட்டுள்ளது, அதன் நிலை: { $policy_status }.
