-- The contacts list filtered by lead status walks this in list order (one walk per status).
CREATE INDEX contacts_lead_idx ON contacts (workspace_id, lead_status, activity_sort DESC, id DESC);
