"""Chats: finding the chat an event continues (:mod:`.matching`) and reading chats for the API
(:mod:`.queries`)."""
