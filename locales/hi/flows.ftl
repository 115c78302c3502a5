## साझा
common-sorry = क्षमा करें, हमारा सिस्टम अभी जवाब नहीं दे रहा है। कृपया थोड़ी देर बाद फिर कोशिश करें।
btn-retry = फिर कोशिश करें
btn-another = दूसरा क्लेम

## मेनू
menu-welcome = नमस्ते! आज मैं आपकी क्या मदद कर सकता हूँ?
menu-list-button = विकल्प चुनें
menu-section-policy = मेरी पॉलिसी
menu-section-more = और
menu-policy = पॉलिसी विवरण
menu-policy-desc = प्लान, स्थिति, बीमा राशि और अगली देय तिथि
menu-premium = प्रीमियम भुगतान
menu-premium-desc = देय राशि, देय तिथि और भुगतान लिंक
menu-claim = क्लेम की स्थिति
menu-claim-desc = आपका क्लेम कहाँ है और क्या बाकी है
menu-my-claims = मेरे चालू क्लेम
menu-my-claims-desc = जो क्लेम अभी प्रक्रिया में हैं, और उनमें क्या बाकी है
menu-document = पॉलिसी दस्तावेज़
menu-document-desc = अपना पॉलिसी दस्तावेज़ डाउनलोड करने का लिंक
menu-agent = एजेंट से बात करें
menu-agent-desc = हमारी टीम के किसी व्यक्ति से चैट करें
menu-language = भाषा बदलें
menu-language-desc = English, हिन्दी, தமிழ்
menu-preferences = संदेश सेटिंग
menu-preferences-desc = ऑफ़र, या सभी संदेश बंद करें
menu-help = मदद
menu-help-desc = मैं आपके लिए क्या कर सकता हूँ

## भाषा
language-choose = कृपया अपनी भाषा चुनें।
language-en = English
language-hi = हिन्दी
language-ta = தமிழ்
language-set = हो गया। अब मैं आपसे हिन्दी में बात करूँगा।

## मदद
help-text = मैं आपकी पॉलिसी का विवरण और दस्तावेज़, देय प्रीमियम, आपके चालू क्लेम और किसी क्लेम की स्थिति बता सकता हूँ। विकल्प देखने के लिए कभी भी "मेनू" लिखें, किसी व्यक्ति से बात करने के लिए "एजेंट", या संदेश बंद करने के लिए "रोकें" लिखें।

## एजेंट
handoff-connecting = मैं आपको हमारी टीम से जोड़ रहा हूँ। एक एजेंट जल्द ही यहीं जवाब देगा।
handoff-after-hours = हमारी टीम { $hours } जवाब देती है। अभी यह समय नहीं है, इसलिए एजेंट { $next } से जवाब देगा। आपका अनुरोध कतार में है।

## सहमति
optout-confirmed = अब आपको हमारी ओर से संदेश नहीं मिलेंगे, सिवाय आपके दर्ज क्लेम से जुड़ी ज़रूरी जानकारी के। फिर से शुरू करने के लिए कभी भी START या "शुरू" भेजें।
optin-confirmed = फिर से स्वागत है! अब आपको पॉलिसी, प्रीमियम और क्लेम की जानकारी फिर से मिलेगी।
prefs-choose = आपकी संदेश सेटिंग: आपको अपनी पॉलिसी, प्रीमियम और क्लेम की जानकारी मिलती है। आप क्या बदलना चाहेंगे?
prefs-offers = ऑफ़र पाएँ
prefs-stop = सभी संदेश बंद करें
prefs-offers-on = धन्यवाद। हम आपको ऑफ़र भेजेंगे, हफ़्ते में अधिकतम 2 संदेश। बंद करने के लिए कभी भी "रोकें" लिखें।
prefs-offers-ask = क्या हम आपको WhatsApp पर ऑफ़र भेजें: नए बीमा प्लान, नवीनीकरण पर छूट और ऐड-ऑन? हफ़्ते में अधिकतम 2 संदेश। इन्हें बंद करने के लिए कभी भी "रोकें" या STOP भेजें।
prefs-yes = हाँ, ऑफ़र भेजें
prefs-no = नहीं, धन्यवाद
prefs-offers-off = ठीक है: कोई ऑफ़र नहीं। आपको अपनी पॉलिसी, प्रीमियम और क्लेम की जानकारी मिलती रहेगी।

## पहचान
identity-ask-policy = आपकी जानकारी सुरक्षित रखने के लिए, कृपया अपना पॉलिसी नंबर लिखें।
identity-bad-policy = यह पॉलिसी नंबर नहीं लगता। इसमें 6 से 20 अक्षर या अंक होते हैं, जैसे 12345678।
identity-ask-dob = धन्यवाद। अब कृपया पॉलिसीधारक की जन्म तिथि लिखें (DD/MM/YYYY)।
identity-bad-dob = कृपया जन्म तिथि DD/MM/YYYY के रूप में लिखें, जैसे 15/08/1980।
identity-mismatch = क्षमा करें, ये विवरण हमारे रिकॉर्ड से मेल नहीं खाते।
identity-locked = आपकी सुरक्षा के लिए, कई प्रयासों के बाद सत्यापन कुछ समय के लिए रोक दिया गया है। हमारी टीम आपकी मदद कर सकती है।

## पॉलिसी
policy-choose = आपकी { $policy_count } पॉलिसी हैं। आप कौन-सी देखना चाहेंगे?
policy-list-button = पॉलिसी चुनें
policy-row-title = { $plan }
policy-row-desc = पॉलिसी { $policy_number }
policy-details = पॉलिसी { $policy_number }: { $plan }
    प्रकार: { $policy_type }
    स्थिति: { $policy_status }
    बीमा राशि: { $sum_assured }
    अगला प्रीमियम देय: { $next_due_date }
policy-none = आपके विवरण से जुड़ी कोई पॉलिसी नहीं मिली।
btn-premium = प्रीमियम देय
btn-document = पॉलिसी दस्तावेज़

## पॉलिसी दस्तावेज़
document-choose-policy = आपको किस पॉलिसी का दस्तावेज़ चाहिए?
policy-document = पॉलिसी { $policy_number } ({ $plan }) का दस्तावेज़ यहाँ है:
    { $document_url }
policy-document-caption = पॉलिसी { $policy_number } ({ $plan }) की अनुसूची
policy-document-sent = ऊपर पॉलिसी { $policy_number } ({ $plan }) की अनुसूची PDF में है। इसे अपने रिकॉर्ड के लिए रखें।
policy-no-document = पॉलिसी { $policy_number } ({ $plan }) की डिजिटल कॉपी अभी हमारे पास नहीं है। हमारी टीम इसे आपको भेज सकती है।

## क्लेम
claim-ask-number = कृपया अपना क्लेम नंबर लिखें, जैसे CLM-123456।
claim-bad-number = क्लेम नंबर CLM-123456 जैसा होता है। कृपया जाँचकर फिर से लिखें।
claim-status = क्लेम { $claim_number }: { $claim_stage } ({ $claim_updated_date } को अपडेट)।
    { $pending_documents ->
        [0] कोई दस्तावेज़ बाकी नहीं है।
        [one] एक दस्तावेज़ बाकी है।
       *[other] { $pending_documents } दस्तावेज़ बाकी हैं।
    }
claim-letter-caption = क्लेम { $claim_number } का पत्र: { $claim_stage }
claim-not-found = क्लेम { $claim_number } नहीं मिला।
btn-my-claims = मेरे चालू क्लेम
btn-claim-number = क्लेम नंबर लिखें

## चालू क्लेम
claims-choose = आपके { $claim_count } क्लेम अभी चालू हैं। आप कौन-सा देखना चाहेंगे?
claims-list-button = क्लेम चुनें
claims-row-title = { $claim_number }
claims-row-desc = { $claim_stage } · { $claim_updated_date } को अपडेट
claims-none-open = आपकी पॉलिसी पर कोई चालू क्लेम नहीं है। अगर आपके पास क्लेम नंबर है, तो मैं उसकी स्थिति देख सकता हूँ।

## प्रीमियम
premium-choose-policy = आप किस पॉलिसी का भुगतान करना चाहेंगे?
premium-due = पॉलिसी { $policy_number } का { $premium_amount } प्रीमियम { $due_date } को देय है।
    यहाँ सुरक्षित भुगतान करें: { $pay_link }
btn-paid = मैंने भुगतान किया
btn-remind = बाद में याद दिलाएँ
premium-reminder-set = ठीक है, मैं आपको { $remind_date } को याद दिलाऊँगा।
premium-already-paid = धन्यवाद! भुगतान दिखने में 2 कार्य दिवस तक लग सकते हैं। अगर आपने इससे पहले भुगतान किया था, तो हमारी टीम इसे जाँच सकती है।
premium-not-due = इस पॉलिसी पर अभी कोई प्रीमियम देय नहीं है।
reminder-pay-link = अभी भुगतान करें: { $pay_link }

# OTP
btn-send-code = मुझे कोड भेजें
btn-use-dob = जन्म तिथि से
identity-otp-sent = हमने इस पॉलिसी पर पंजीकृत मोबाइल नंबर पर एक कोड भेजा है। कृपया वह कोड यहाँ लिखें। इसे कभी किसी के साथ साझा न करें, कॉल पर हमारे साथ भी नहीं।
identity-otp-bad-code = कृपया कोड के केवल अंक लिखें, जैसे 123456।
identity-otp-wrong = यह कोड सही नहीं है। कृपया इसे जाँचकर फिर से लिखें, या नया कोड मँगवाएँ।
identity-otp-expired = इस कोड की समय-सीमा समाप्त हो गई है। मैं आपको नया कोड भेज सकता हूँ।
identity-otp-limited = अभी बहुत सारे कोड माँगे गए हैं। कृपया बाद में फिर कोशिश करें, या जन्म तिथि से सत्यापन करें।
identity-otp-unavailable = क्षमा करें, हम अभी कोड नहीं भेज सकते। आप पॉलिसीधारक की जन्म तिथि से सत्यापन कर सकते हैं।
# issue 21: रद्द
cancel-done = रद्द कर दिया। यह रहा मेनू। (हमारे सभी संदेश बंद करने के लिए STOP या "रोकें" भेजें।)

# issue 21: data values (बीमा कंपनी के कोड, पॉलिसीधारक की भाषा में)
value-policy-status-active = सक्रिय
value-policy-status-grace = ग्रेस अवधि में
value-policy-status-lapsed = व्यपगत (लैप्स)
value-policy-status-matured = परिपक्व
value-policy-status-expired = समाप्त
value-policy-status-cancelled = रद्द
value-policy-status-surrendered = सरेंडर की गई
value-claim-stage-intimated = सूचना दर्ज
value-claim-stage-documents-pending = दस्तावेज़ बाकी
value-claim-stage-under-review = जाँच में
value-claim-stage-approved = स्वीकृत
value-claim-stage-settled = भुगतान हो गया
value-claim-stage-rejected = अस्वीकृत
value-claim-stage-closed = बंद
value-policy-type-health = स्वास्थ्य
value-policy-type-motor = मोटर
value-policy-type-life = जीवन
value-policy-type-travel = यात्रा
value-policy-type-home = गृह
value-policy-type-other = अन्य

## क्लेम दर्ज करना और बाकी दस्तावेज़ (issue 18)
menu-claim-new = क्लेम दर्ज करें
menu-claim-new-desc = दुर्घटना, चोरी, बीमारी या किसी और नुकसान के बारे में बताएँ
intimate-choose-policy = क्लेम किस पॉलिसी पर है?
intimate-what = क्या हुआ? (पॉलिसी { $policy_number }, { $plan })
intimate-loss-button = क्या हुआ
intimate-loss-row = { $loss_type }
intimate-when = यह कब हुआ? कृपया तारीख लिखें, जैसे 15/01/2026।
intimate-bad-date = कृपया बीत चुकी कोई तारीख लिखें, जैसे 15/01/2026।
intimate-describe = कृपया एक-दो वाक्यों में बताएँ कि क्या हुआ।
intimate-bad-description = कृपया जो हुआ उसके बारे में 10 से 500 अक्षरों में लिखें।
intimate-files = कृपया नुकसान की फ़ोटो और कोई बिल या रिपोर्ट भेजें, अधिकतम 10 फ़ाइलें। सब भेजने के बाद, या कुछ न हो तो, "पूरा हुआ" दबाएँ।
intimate-summary = कृपया अपना क्लेम जाँचें:
    पॉलिसी: { $policy_number } ({ $plan })
    क्या हुआ: { $loss_type }
    कब: { $loss_date }
    विवरण: { $loss_description }
    फ़ाइलें: { $claim_files }
    क्या मैं इसे दर्ज करूँ?
intimate-done = आपका क्लेम दर्ज हो गया है। आपका क्लेम नंबर { $claim_number } है। हमारी क्लेम टीम आपसे संपर्क करेगी; क्लेम से जुड़े किसी भी सवाल के लिए यह नंबर संभालकर रखें।
btn-done = पूरा हुआ
btn-confirm = क्लेम दर्ज करें
btn-start-again = विवरण बदलें
btn-send-documents = दस्तावेज़ भेजें
docs-send = कृपया क्लेम { $claim_number } के बाकी दस्तावेज़ फ़ोटो या PDF फ़ाइल के रूप में भेजें, अधिकतम 10। सब भेजने के बाद "पूरा हुआ" दबाएँ।
docs-attached = धन्यवाद। { $documents_attached ->
        [one] 1 फ़ाइल
       *[other] { $documents_attached } फ़ाइलें
    } क्लेम { $claim_number } में जोड़ दी गईं। हमारी क्लेम टीम इन्हें देखेगी।
value-loss-type-accident = दुर्घटना
value-loss-type-theft = चोरी
value-loss-type-hospitalisation = अस्पताल में भर्ती
value-loss-type-illness = बीमारी
value-loss-type-fire = आग
value-loss-type-flood = बाढ़
value-loss-type-death = मृत्यु
value-loss-type-disability = विकलांगता
value-loss-type-baggage-loss = सामान खोना
value-loss-type-trip-cancellation = यात्रा रद्द होना
value-loss-type-other = कुछ और
