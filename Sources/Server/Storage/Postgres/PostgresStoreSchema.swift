/// The PostgreSQL tables of the stores; see `PostgresMigrator`. One migration mirrors SQLite's
/// v1 + v2 (`AppDatabase.migrator`): the same tables and columns, in snake_case. Times are the
/// API's ISO-8601 text (`ISOTime`, millisecond precision), so both backends answer the same bytes;
/// the ordered text columns are compared with `COLLATE "C"` (byte order, as SQLite does).
enum PostgresStoreSchema {
    static let migrations: [PostgresMigration] = [
        PostgresMigration("store-v1-rooms-products-chats-notifications-orders", [
            """
            CREATE TABLE room (
                id TEXT PRIMARY KEY,
                shop_owner_id TEXT NOT NULL,
                shop_owner_name TEXT,
                title TEXT NOT NULL,
                description TEXT,
                thumbnail_url TEXT,
                stream_key TEXT NOT NULL UNIQUE,
                status TEXT NOT NULL,
                peak_viewers BIGINT NOT NULL DEFAULT 0,
                total_orders BIGINT NOT NULL DEFAULT 0,
                total_revenue DOUBLE PRECISION NOT NULL DEFAULT 0,
                created_at TEXT COLLATE "C" NOT NULL,
                updated_at TEXT NOT NULL,
                started_at TEXT,
                ended_at TEXT
            )
            """,
            "CREATE INDEX room_on_owner ON room (shop_owner_id)",
            "CREATE INDEX room_on_status ON room (status)",
            """
            CREATE TABLE live_product (
                id TEXT PRIMARY KEY,
                live_room_id TEXT NOT NULL REFERENCES room (id) ON DELETE CASCADE,
                product_id TEXT NOT NULL,
                product_name TEXT,
                product_image_url TEXT,
                original_price DOUBLE PRECISION,
                live_price DOUBLE PRECISION NOT NULL,
                discount_percent DOUBLE PRECISION,
                quantity_limit BIGINT,
                stock_available BIGINT,
                sold_count BIGINT NOT NULL DEFAULT 0,
                is_featured BOOLEAN NOT NULL DEFAULT FALSE,
                display_order BIGINT NOT NULL DEFAULT 0,
                created_at TEXT COLLATE "C" NOT NULL,
                UNIQUE (live_room_id, product_id)
            )
            """,
            "CREATE INDEX live_product_on_room_order ON live_product (live_room_id, display_order)",
            """
            CREATE TABLE live_chat (
                seq BIGSERIAL PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                live_room_id TEXT NOT NULL REFERENCES room (id) ON DELETE CASCADE,
                user_id TEXT,
                username TEXT,
                avatar_url TEXT,
                message TEXT NOT NULL,
                type TEXT NOT NULL,
                is_pinned BOOLEAN NOT NULL DEFAULT FALSE,
                product_id TEXT,
                product_name TEXT,
                created_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX live_chat_on_room_seq ON live_chat (live_room_id, seq)",
            """
            CREATE TABLE notification (
                seq BIGSERIAL PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                user_id TEXT NOT NULL,
                type TEXT NOT NULL,
                title TEXT NOT NULL,
                body TEXT,
                created_at TEXT NOT NULL,
                read_at TEXT
            )
            """,
            "CREATE INDEX notification_on_user_seq ON notification (user_id, seq)",
            "CREATE INDEX notification_unread_on_user ON notification (user_id) WHERE read_at IS NULL",
            """
            CREATE TABLE processed_order (
                order_id TEXT PRIMARY KEY,
                live_room_id TEXT NOT NULL,
                amount DOUBLE PRECISION NOT NULL,
                processed_at TEXT NOT NULL,
                ordered_at TEXT
            )
            """,
        ]),
        // Issue 21: mirrors SQLite's v3 (the replay timeline's events; chat read by time).
        PostgresMigration("store-v3-live-timeline-event", [
            """
            CREATE TABLE live_timeline_event (
                seq BIGSERIAL PRIMARY KEY,
                live_room_id TEXT NOT NULL REFERENCES room (id) ON DELETE CASCADE,
                at_ms BIGINT NOT NULL,
                kind TEXT NOT NULL,
                payload TEXT NOT NULL
            )
            """,
            "CREATE INDEX live_timeline_event_on_room_at ON live_timeline_event (live_room_id, at_ms, seq)",
            "CREATE INDEX live_chat_on_room_created ON live_chat (live_room_id, (created_at COLLATE \"C\"), seq)",
        ]),
        // Issue 22 (recovery): the cluster's one epoch of the hub's offsets, made once with the
        // database (a new database, with outbox ids from 1 again, gets a new one).
        PostgresMigration("store-v6-recovery", [
            "CREATE TABLE livehub_hub_epoch (id SMALLINT PRIMARY KEY CHECK (id = 1), epoch TEXT NOT NULL)",
            "INSERT INTO livehub_hub_epoch (id, epoch) VALUES (1, substr(md5(random()::text || clock_timestamp()::text), 1, 16))",
        ]),
    ]
}
