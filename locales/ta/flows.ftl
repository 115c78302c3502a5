## பொது
common-sorry = மன்னிக்கவும், எங்கள் அமைப்பு இப்போது பதிலளிக்கவில்லை. சிறிது நேரம் கழித்து மீண்டும் முயலவும்.
btn-retry = மீண்டும் முயல்க
btn-another = வேறு க்ளைம்

## மெனு
menu-welcome = வணக்கம்! இன்று நான் உங்களுக்கு எப்படி உதவலாம்?
menu-list-button = தேர்வு செய்க
menu-section-policy = என் பாலிசிகள்
menu-section-more = மேலும்
menu-policy = பாலிசி விவரங்கள்
menu-policy-desc = திட்டம், நிலை, காப்புத் தொகை, அடுத்த செலுத்தும் தேதி
menu-premium = பிரீமியம் செலுத்த
menu-premium-desc = செலுத்த வேண்டிய தொகை, தேதி மற்றும் கட்டண இணைப்பு
menu-claim = க்ளைம் நிலை
menu-claim-desc = உங்கள் க்ளைம் எந்த நிலையில் உள்ளது, என்ன நிலுவையில் உள்ளது
menu-my-claims = என் நடப்பு க்ளைம்கள்
menu-my-claims-desc = இன்னும் பரிசீலனையில் உள்ள க்ளைம்கள், என்ன நிலுவையில் உள்ளது
menu-document = பாலிசி ஆவணம்
menu-document-desc = உங்கள் பாலிசி ஆவணத்தைப் பதிவிறக்குவதற்கான இணைப்பு
menu-agent = முகவருடன் பேச
menu-agent-desc = எங்கள் குழுவில் ஒருவருடன் உரையாடுங்கள்
menu-language = மொழியை மாற்று
menu-language-desc = English, हिन्दी, தமிழ்
menu-preferences = செய்தி அமைப்புகள்
menu-preferences-desc = சலுகைகள், அல்லது எல்லா செய்திகளையும் நிறுத்த
menu-help = உதவி
menu-help-desc = நான் உங்களுக்கு என்ன செய்ய முடியும்

## மொழி
language-choose = உங்கள் மொழியைத் தேர்ந்தெடுக்கவும்.
language-en = English
language-hi = हिन्दी
language-ta = தமிழ்
language-set = சரி. இனி நான் உங்களுடன் தமிழில் பேசுவேன்.

## உதவி
help-text = உங்கள் பாலிசி விவரங்கள், பாலிசி ஆவணம், செலுத்த வேண்டிய பிரீமியம், உங்கள் நடப்பு க்ளைம்கள், ஒரு க்ளைமின் நிலை ஆகியவற்றை என்னால் காட்ட முடியும். விருப்பங்களைப் பார்க்க எப்போது வேண்டுமானாலும் "மெனு" என்றும், ஒருவருடன் பேச "முகவர்" என்றும், செய்திகளை நிறுத்த "நிறுத்து" என்றும் தட்டச்சு செய்யவும்.

## முகவர்
handoff-connecting = உங்களை எங்கள் குழுவுடன் இணைக்கிறேன். ஒரு முகவர் விரைவில் இங்கே பதிலளிப்பார்.
handoff-after-hours = எங்கள் குழு { $hours } பதிலளிக்கும். இப்போது அந்த நேரம் அல்ல, எனவே { $next } முதல் ஒரு முகவர் பதிலளிப்பார். உங்கள் கோரிக்கை வரிசையில் உள்ளது.

## ஒப்புதல்
optout-confirmed = இனி எங்களிடமிருந்து செய்திகள் வராது, நீங்கள் பதிவு செய்த க்ளைம் பற்றிய அவசியமான தகவல்கள் தவிர. மீண்டும் தொடங்க எப்போது வேண்டுமானாலும் START அல்லது "தொடங்கு" என்று அனுப்பவும்.
optin-confirmed = மீண்டும் வருக! பாலிசி, பிரீமியம், க்ளைம் தகவல்கள் மீண்டும் உங்களுக்கு வரும்.
prefs-choose = உங்கள் செய்தி அமைப்புகள்: உங்கள் பாலிசி, பிரீமியம், க்ளைம் தகவல்கள் உங்களுக்கு வருகின்றன. எதை மாற்ற விரும்புகிறீர்கள்?
prefs-offers = சலுகைகள் பெற
prefs-stop = செய்திகளை நிறுத்து
prefs-offers-on = நன்றி. வாரத்திற்கு அதிகபட்சம் 2 செய்திகளாகச் சலுகைகளை அனுப்புவோம். நிறுத்த எப்போது வேண்டுமானாலும் "நிறுத்து" என்று அனுப்பவும்.
prefs-offers-ask = WhatsApp-இல் உங்களுக்குச் சலுகைகளை அனுப்பலாமா: புதிய காப்பீட்டுத் திட்டங்கள், புதுப்பித்தல் தள்ளுபடிகள், கூடுதல் இணைப்புகள்? வாரத்திற்கு அதிகபட்சம் 2 செய்திகள். நிறுத்த எப்போது வேண்டுமானாலும் "நிறுத்து" அல்லது STOP அனுப்பவும்.
prefs-yes = ஆம், அனுப்புங்கள்
prefs-no = வேண்டாம், நன்றி
prefs-offers-off = சரி: சலுகைகள் இல்லை. உங்கள் பாலிசி, பிரீமியம், க்ளைம் தகவல்கள் தொடர்ந்து வரும்.

## அடையாளம்
identity-ask-policy = உங்கள் தகவலைப் பாதுகாக்க, உங்கள் பாலிசி எண்ணைத் தட்டச்சு செய்யவும்.
identity-bad-policy = இது பாலிசி எண் போலத் தெரியவில்லை. அதில் 6 முதல் 20 எழுத்துகள் அல்லது எண்கள் இருக்கும், எ.கா. 12345678.
identity-ask-dob = நன்றி. இப்போது பாலிசிதாரரின் பிறந்த தேதியைத் தட்டச்சு செய்யவும் (DD/MM/YYYY).
identity-bad-dob = பிறந்த தேதியை DD/MM/YYYY வடிவில் தட்டச்சு செய்யவும், எ.கா. 15/08/1980.
identity-mismatch = மன்னிக்கவும், இந்த விவரங்கள் எங்கள் பதிவுகளுடன் பொருந்தவில்லை.
identity-locked = உங்கள் பாதுகாப்புக்காக, பல முயற்சிகளுக்குப் பிறகு சரிபார்ப்பு சிறிது நேரம் பூட்டப்பட்டுள்ளது. எங்கள் குழு உங்களுக்கு உதவ முடியும்.

## பாலிசி
policy-choose = உங்களிடம் { $policy_count } பாலிசிகள் உள்ளன. எதைப் பார்க்க விரும்புகிறீர்கள்?
policy-list-button = பாலிசி தேர்வு
policy-row-title = { $plan }
policy-row-desc = பாலிசி { $policy_number }
policy-details = பாலிசி { $policy_number }: { $plan }
    வகை: { $policy_type }
    நிலை: { $policy_status }
    காப்புத் தொகை: { $sum_assured }
    அடுத்த பிரீமியம் தேதி: { $next_due_date }
policy-none = உங்கள் விவரங்களுடன் இணைக்கப்பட்ட பாலிசி எதுவும் கிடைக்கவில்லை.
btn-premium = பிரீமியம் நிலுவை
btn-document = பாலிசி ஆவணம்

## பாலிசி ஆவணம்
document-choose-policy = எந்த பாலிசியின் ஆவணம் உங்களுக்கு வேண்டும்?
policy-document = பாலிசி { $policy_number } ({ $plan }) இன் ஆவணம் இதோ:
    { $document_url }
policy-document-caption = பாலிசி { $policy_number } ({ $plan }) இன் அட்டவணை
policy-document-sent = மேலே பாலிசி { $policy_number } ({ $plan }) இன் அட்டவணை PDF ஆக உள்ளது. உங்கள் பதிவுகளுக்காக வைத்துக்கொள்ளுங்கள்.
policy-no-document = பாலிசி { $policy_number } ({ $plan }) இன் டிஜிட்டல் நகல் இன்னும் எங்களிடம் இல்லை. எங்கள் குழு அதை உங்களுக்கு அனுப்ப முடியும்.

## க்ளைம்
claim-ask-number = உங்கள் க்ளைம் எண்ணைத் தட்டச்சு செய்யவும், எ.கா. CLM-123456.
claim-bad-number = க்ளைம் எண் CLM-123456 போல இருக்கும். சரிபார்த்து மீண்டும் தட்டச்சு செய்யவும்.
claim-status = க்ளைம் { $claim_number }: { $claim_stage } ({ $claim_updated_date } அன்று புதுப்பிக்கப்பட்டது).
    { $pending_documents ->
        [0] எந்த ஆவணமும் நிலுவையில் இல்லை.
        [one] ஒரு ஆவணம் நிலுவையில் உள்ளது.
       *[other] { $pending_documents } ஆவணங்கள் நிலுவையில் உள்ளன.
    }
claim-letter-caption = க்ளைம் { $claim_number } கடிதம்: { $claim_stage }
claim-not-found = க்ளைம் { $claim_number } கிடைக்கவில்லை.
btn-my-claims = என் க்ளைம்கள்
btn-claim-number = க்ளைம் எண் தருக

## நடப்பு க்ளைம்கள்
claims-choose = உங்களுக்கு { $claim_count } நடப்பு க்ளைம்கள் உள்ளன. எதைப் பார்க்க விரும்புகிறீர்கள்?
claims-list-button = க்ளைம் தேர்வு
claims-row-title = { $claim_number }
claims-row-desc = { $claim_stage } · { $claim_updated_date } அன்று புதுப்பிக்கப்பட்டது
claims-none-open = உங்கள் பாலிசிகளில் நடப்பு க்ளைம் எதுவும் இல்லை. உங்களிடம் க்ளைம் எண் இருந்தால், அதன் நிலையை என்னால் பார்க்க முடியும்.

## பிரீமியம்
premium-choose-policy = எந்த பாலிசிக்குப் பணம் செலுத்த விரும்புகிறீர்கள்?
premium-due = பாலிசி { $policy_number } க்கான { $premium_amount } பிரீமியம் { $due_date } அன்று செலுத்த வேண்டும்.
    இங்கே பாதுகாப்பாகச் செலுத்தவும்: { $pay_link }
btn-paid = செலுத்திவிட்டேன்
btn-remind = பின்னர் நினைவூட்டு
premium-reminder-set = சரி, { $remind_date } அன்று உங்களுக்கு நினைவூட்டுகிறேன்.
premium-already-paid = நன்றி! பணம் காட்டப்பட 2 வேலை நாட்கள் வரை ஆகலாம். அதற்கு முன்பே செலுத்தியிருந்தால், எங்கள் குழு அதைச் சரிபார்க்கும்.
premium-not-due = இந்த பாலிசிக்கு இப்போது செலுத்த வேண்டிய பிரீமியம் எதுவும் இல்லை.
reminder-pay-link = இப்போது செலுத்த: { $pay_link }

# OTP
btn-send-code = குறியீடு அனுப்பு
btn-use-dob = பிறந்த தேதி மூலம்
identity-otp-sent = இந்த பாலிசியில் பதிவுசெய்யப்பட்ட மொபைல் எண்ணுக்கு ஒரு குறியீட்டை அனுப்பியுள்ளோம். அந்தக் குறியீட்டை இங்கே தட்டச்சு செய்யவும். அதை யாருடனும் பகிர வேண்டாம், அழைப்பில் எங்களுடனும் கூட.
identity-otp-bad-code = குறியீட்டின் எண்களை மட்டும் தட்டச்சு செய்யவும், எ.கா. 123456.
identity-otp-wrong = அந்தக் குறியீடு சரியில்லை. சரிபார்த்து மீண்டும் தட்டச்சு செய்யவும், அல்லது புதிய குறியீட்டைக் கேட்கவும்.
identity-otp-expired = அந்தக் குறியீட்டின் காலம் முடிந்துவிட்டது. உங்களுக்குப் புதிய குறியீட்டை அனுப்ப முடியும்.
identity-otp-limited = இப்போது அதிகமான குறியீடுகள் கேட்கப்பட்டுள்ளன. பின்னர் மீண்டும் முயலவும், அல்லது பிறந்த தேதி மூலம் சரிபார்க்கவும்.
identity-otp-unavailable = மன்னிக்கவும், இப்போது குறியீட்டை அனுப்ப முடியவில்லை. பாலிசிதாரரின் பிறந்த தேதி மூலம் சரிபார்க்கலாம்.
# issue 21: ரத்து
cancel-done = ரத்து செய்யப்பட்டது. இதோ மெனு. (எங்களின் எல்லாச் செய்திகளையும் நிறுத்த STOP அல்லது "நிறுத்து" என்று அனுப்பவும்.)

# issue 21: data values (காப்பீட்டு நிறுவனத்தின் குறியீடுகள், பாலிசிதாரரின் மொழியில்)
value-policy-status-active = நடைமுறையில் உள்ளது
value-policy-status-grace = சலுகைக் காலத்தில்
value-policy-status-lapsed = தவணை தவறியது
value-policy-status-matured = முதிர்வடைந்தது
value-policy-status-expired = காலாவதியானது
value-policy-status-cancelled = ரத்து செய்யப்பட்டது
value-policy-status-surrendered = ஒப்படைக்கப்பட்டது
value-claim-stage-intimated = தெரிவிக்கப்பட்டது
value-claim-stage-documents-pending = ஆவணங்கள் நிலுவையில்
value-claim-stage-under-review = பரிசீலனையில்
value-claim-stage-approved = அங்கீகரிக்கப்பட்டது
value-claim-stage-settled = தொகை வழங்கப்பட்டது
value-claim-stage-rejected = நிராகரிக்கப்பட்டது
value-claim-stage-closed = முடிக்கப்பட்டது
value-policy-type-health = உடல்நலம்
value-policy-type-motor = மோட்டார்
value-policy-type-life = ஆயுள்
value-policy-type-travel = பயணம்
value-policy-type-home = வீடு
value-policy-type-other = மற்றவை

## க்ளைம் பதிவு மற்றும் நிலுவை ஆவணங்கள் (issue 18)
menu-claim-new = க்ளைம் பதிவு செய்
menu-claim-new-desc = விபத்து, திருட்டு, நோய் அல்லது வேறு இழப்பு பற்றி சொல்லுங்கள்
intimate-choose-policy = க்ளைம் எந்த பாலிசியில்?
intimate-what = என்ன நடந்தது? (பாலிசி { $policy_number }, { $plan })
intimate-loss-button = என்ன நடந்தது
intimate-loss-row = { $loss_type }
intimate-when = இது எப்போது நடந்தது? தேதியை எழுதுங்கள், உதாரணமாக 15/01/2026.
intimate-bad-date = ஏற்கனவே கடந்த ஒரு தேதியை எழுதுங்கள், உதாரணமாக 15/01/2026.
intimate-describe = என்ன நடந்தது என்று ஓரிரு வாக்கியங்களில் சுருக்கமாக சொல்லுங்கள்.
intimate-bad-description = நடந்ததைப் பற்றி 10 முதல் 500 எழுத்துகளுக்குள் எழுதுங்கள்.
intimate-files = சேதத்தின் புகைப்படங்களையும் பில்கள் அல்லது அறிக்கைகளையும் அனுப்புங்கள், அதிகபட்சம் 10 கோப்புகள். அனைத்தையும் அனுப்பிய பின், அல்லது எதுவும் இல்லையென்றால், "முடிந்தது" அழுத்துங்கள்.
intimate-summary = உங்கள் க்ளைமை சரிபாருங்கள்:
    பாலிசி: { $policy_number } ({ $plan })
    என்ன நடந்தது: { $loss_type }
    எப்போது: { $loss_date }
    விவரம்: { $loss_description }
    கோப்புகள்: { $claim_files }
    இதைப் பதிவு செய்யலாமா?
intimate-done = உங்கள் க்ளைம் பதிவு செய்யப்பட்டது. உங்கள் க்ளைம் எண் { $claim_number }. எங்கள் க்ளைம் குழு உங்களைத் தொடர்புகொள்ளும்; க்ளைம் பற்றிய எந்தக் கேள்விக்கும் இந்த எண்ணை வைத்திருங்கள்.
btn-done = முடிந்தது
btn-confirm = க்ளைம் பதிவு
btn-start-again = விவரங்களை மாற்று
btn-send-documents = ஆவணங்கள் அனுப்பு
docs-send = க்ளைம் { $claim_number } க்கான நிலுவை ஆவணங்களை புகைப்படங்களாக அல்லது PDF கோப்புகளாக அனுப்புங்கள், அதிகபட்சம் 10. அனைத்தையும் அனுப்பிய பின் "முடிந்தது" அழுத்துங்கள்.
docs-attached = நன்றி. { $documents_attached ->
        [one] 1 கோப்பு
       *[other] { $documents_attached } கோப்புகள்
    } க்ளைம் { $claim_number } உடன் சேர்க்கப்பட்டன. எங்கள் க்ளைம் குழு அவற்றைப் பார்க்கும்.
value-loss-type-accident = விபத்து
value-loss-type-theft = திருட்டு
value-loss-type-hospitalisation = மருத்துவமனை சேர்க்கை
value-loss-type-illness = நோய்
value-loss-type-fire = தீ
value-loss-type-flood = வெள்ளம்
value-loss-type-death = மரணம்
value-loss-type-disability = ஊனம்
value-loss-type-baggage-loss = பயணப்பை இழப்பு
value-loss-type-trip-cancellation = பயண ரத்து
value-loss-type-other = வேறு ஏதாவது
