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
        // Issue 22: mirrors SQLite's v4 (flash deals and their reservations; times in epoch ms).
        PostgresMigration("store-v4-flash-deals", [
            """
            CREATE TABLE deal (
                id TEXT PRIMARY KEY,
                live_room_id TEXT NOT NULL REFERENCES room (id) ON DELETE CASCADE,
                live_product_id TEXT NOT NULL,
                product_name TEXT,
                original_price DOUBLE PRECISION,
                deal_price DOUBLE PRECISION NOT NULL,
                quantity BIGINT NOT NULL,
                remaining BIGINT NOT NULL CHECK (remaining >= 0),
                per_buyer_limit BIGINT NOT NULL,
                starts_at BIGINT NOT NULL,
                ends_at BIGINT NOT NULL,
                status TEXT NOT NULL,
                created_at BIGINT NOT NULL
            )
            """,
            "CREATE INDEX deal_on_room ON deal (live_room_id, created_at)",
            "CREATE INDEX deal_on_status ON deal (status)",
            """
            CREATE TABLE deal_reservation (
                id TEXT PRIMARY KEY,
                deal_id TEXT NOT NULL REFERENCES deal (id) ON DELETE CASCADE,
                user_id TEXT NOT NULL,
                quantity BIGINT NOT NULL,
                expires_at BIGINT NOT NULL,
                status TEXT NOT NULL,
                created_at BIGINT NOT NULL
            )
            """,
            "CREATE INDEX deal_reservation_on_buyer ON deal_reservation (deal_id, user_id)",
            "CREATE INDEX deal_reservation_on_status_expiry ON deal_reservation (status, expires_at)",
        ]),
        // Issue 22 §3: mirrors SQLite's v5 (moderation; PostgresModerationStore).
        PostgresMigration("store-v5-moderation", [
            """
            CREATE TABLE live_room_moderator (
                live_room_id TEXT NOT NULL REFERENCES room (id) ON DELETE CASCADE,
                user_id TEXT NOT NULL,
                created_at TEXT NOT NULL,
                PRIMARY KEY (live_room_id, user_id)
            )
            """,
            """
            CREATE TABLE live_room_mute (
                live_room_id TEXT NOT NULL REFERENCES room (id) ON DELETE CASCADE,
                user_id TEXT NOT NULL,
                until TEXT COLLATE "C" NOT NULL,
                PRIMARY KEY (live_room_id, user_id)
            )
            """,
            """
            CREATE TABLE live_room_ban (
                live_room_id TEXT NOT NULL REFERENCES room (id) ON DELETE CASCADE,
                user_id TEXT NOT NULL,
                created_at TEXT NOT NULL,
                PRIMARY KEY (live_room_id, user_id)
            )
            """,
            """
            CREATE TABLE live_room_chat_settings (
                live_room_id TEXT PRIMARY KEY REFERENCES room (id) ON DELETE CASCADE,
                slow_mode_seconds BIGINT NOT NULL DEFAULT 0,
                blocked_words TEXT NOT NULL DEFAULT '[]',
                blocked_word_action TEXT NOT NULL DEFAULT 'hold',
                links_only_from_moderators BOOLEAN NOT NULL DEFAULT FALSE
            )
            """,
            """
            CREATE TABLE live_held_chat (
                id TEXT PRIMARY KEY,
                live_room_id TEXT NOT NULL REFERENCES room (id) ON DELETE CASCADE,
                user_id TEXT NOT NULL,
                username TEXT,
                avatar_url TEXT,
                message TEXT NOT NULL,
                created_at TEXT COLLATE "C" NOT NULL
            )
            """,
            "CREATE INDEX live_held_chat_on_room ON live_held_chat (live_room_id, created_at)",
            """
            CREATE TABLE live_moderation_log (
                id BIGSERIAL PRIMARY KEY,
                live_room_id TEXT NOT NULL REFERENCES room (id) ON DELETE CASCADE,
                actor_id TEXT NOT NULL,
                action TEXT NOT NULL,
                target_user_id TEXT,
                target_chat_id TEXT,
                detail TEXT NOT NULL,
                created_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX live_moderation_log_on_room ON live_moderation_log (live_room_id, id)",
        ]),
        // Issue 22 (recovery): the cluster's one epoch of the hub's offsets, made once with the
        // database (a new database, with outbox ids from 1 again, gets a new one).
        PostgresMigration("store-v6-recovery", [
            "CREATE TABLE livehub_hub_epoch (id SMALLINT PRIMARY KEY CHECK (id = 1), epoch TEXT NOT NULL)",
            "INSERT INTO livehub_hub_epoch (id, epoch) VALUES (1, substr(md5(random()::text || clock_timestamp()::text), 1, 16))",
        ]),
    ]
}
