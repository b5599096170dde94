-- fsd schema, version 2: one index entry less for every member reservation (a row inserted and deleted per
-- member offered a call).
-- reservations_node served only the queries by node (release_node at start-up, recovery's reservations_of):
-- rare, and a sequential scan of a table that holds one row per member on a call is as fast.
DROP INDEX reservations_node;
