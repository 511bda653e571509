-- The site scopes (the sorted CLOUD_SITES, or * for every site) of the deployments whose instances may
-- lead on this schema, one row each, kept when they stop: a starting instance looks here for another
-- deployment owning some of its sites, and tests whether it runs by its leader lock (bridge/leader.ts).
CREATE TABLE leader_scopes (
  scope text PRIMARY KEY,
  first_started_at timestamptz NOT NULL DEFAULT now(),
  last_started_at timestamptz NOT NULL DEFAULT now()
);
