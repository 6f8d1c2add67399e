"""Workspace tools' machinery: safe paths, ignore rules, symbols, repo map, search, file
edits and the file-lock manager. Nothing here knows about agents or the server."""
