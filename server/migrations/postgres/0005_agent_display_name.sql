-- What customers see of a specialist ("Dr. Anna Berg"): never their sign-in id.
ALTER TABLE agents ADD COLUMN display_name TEXT;
