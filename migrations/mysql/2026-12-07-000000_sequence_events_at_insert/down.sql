-- Nothing to undo (see up.sql).
DO 0;
