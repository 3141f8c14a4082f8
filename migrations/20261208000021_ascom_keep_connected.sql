-- Connection intent: whether the user wants the device connected (set by connect, cleared by
-- disconnect). A restarted engine connects such devices again; before, every device came back
-- disconnected.
ALTER TABLE ascom_registry ADD COLUMN IF NOT EXISTS keep_connected BOOLEAN NOT NULL DEFAULT false;
