## Answers to a photo or document the bot could not keep (issue 18). The conversation stays
## where it was, so the policyholder can simply send the file again.
media-too-large = That file is too large: { $kind } files can be at most { $limit }. Please send a smaller one.
media-unavailable = I could not download your file. Please send it again.
media-hash-mismatch = Your file arrived damaged, so I discarded it. Please send it again.
media-type-refused = I cannot accept that file: { $kind } messages must be { $accepted }. Please send one of those.
