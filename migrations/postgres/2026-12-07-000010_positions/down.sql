ALTER TABLE fills DROP COLUMN position_seq;
DROP TABLE positions;
