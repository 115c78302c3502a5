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
