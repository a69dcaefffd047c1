"""Operations: the durable record of every write, read back as status and result,
and their engine events live as server-sent events."""
