DROP TABLE user_event_cursors;
DROP TABLE user_events;
