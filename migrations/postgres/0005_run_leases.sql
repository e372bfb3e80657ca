-- Which server instance holds an open run, and until when (Unix ms). The holder renews
-- the lease while it lives; another instance takes the run over only once the lease has
-- lapsed, so processes sharing a database never execute the same run at once.
ALTER TABLE runs ADD COLUMN owner TEXT, ADD COLUMN lease_until BIGINT;
