# Messages the engine itself sends (every language must have all of them).
engine-flow-changed = Sorry, this conversation was updated while you were away. Let's start again from the menu.
engine-misunderstood = Sorry, I didn't understand that. Please tap one of the options, or type "menu".
engine-did-you-mean = Did you mean one of these? Tap the one you want.
engine-offer-agent = I'm having trouble understanding. Would you like to talk to a person?
engine-unsupported = Sorry, I can only read text and button taps here.
engine-please-wait = One moment please, I'm still looking that up.
engine-opted-out = You have stopped messages from us. Send START to receive them again.
engine-agent-unavailable = Sorry, no one from our team is free right now. Please type "menu" to continue with me, or "agent" to try again later.
engine-error = Sorry, something went wrong on our side. Let's go back to the menu.
btn-menu = Main menu
btn-agent = Talk to an agent

# issue 21: the way back from the agent queue (a button on the hand-off message; ≤ 20 characters)
btn-back-to-bot = Back to the bot

# issue 18: steps that collect photos and documents. $count files so far, $max at most,
# $accepted the kinds this step takes in words (from media-kind-*).
engine-media-received = { $count ->
    [one] Got it: 1 file received.
   *[other] Got it: { $count } files received.
} Send more, or tap Done when you have sent everything.
engine-media-kind = This step accepts: { $accepted }. Please send one of those, or tap Done.
engine-media-max = I can take at most { $max } files here, so I did not keep that one. Please tap Done to go on.
engine-media-again = I could not keep that file. Please send it again, or tap Done.
media-kind-image = photos
media-kind-document = documents (PDF)
media-kind-audio = audio recordings
media-kind-video = videos
media-kind-sticker = stickers
