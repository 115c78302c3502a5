## बीमा कंपनी के सिस्टम से सूचनाएँ (POST /api/v1/notifications), 24 घंटे की विंडो के भीतर भेजी जाने वाली।
notify-claim-update = आपका क्लेम { $claim_number } अब इस स्थिति में है: { $claim_stage }।
notify-premium-due = पॉलिसी { $policy_number } का { $premium_amount } प्रीमियम { $due_date } को देय है।
notify-policy-issued = आपकी पॉलिसी { $policy_number } ({ $plan }) जारी हो गई है और अभी { $policy_status } है।
