"""SQL dumps of a CMS: one document per row, the text column chosen by name or guessed, and said."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from tests.extract.helpers import split
from tokenclub.extract.document import ExtractionFailure
from tokenclub.extract.reader import iter_extract, iter_extract_bytes
from tokenclub.extract.records import RecordOptions
from tokenclub.extract.sniff import Format, sniff_head

BODY_1 = "서울시는 오늘 '새 정책'을 발표했다.\n둘째 문단; 세미콜론과 -- 대시도 본문이다."
BODY_2 = 'C:\\자료\\2024 폴더와 "따옴표", 탭\t하나.'

POSTS_INSERT = (
    "INSERT INTO `wp_posts` VALUES "
    + ",".join(
        [
            r"""(1,1,'2024-03-01 09:00:00','서울시는 오늘 \'새 정책\'을 발표했다."""
            r"""\n둘째 문단; 세미콜론과 -- 대시도 본문이다.','첫 기사','publish')""",
            r"""(2,1,'2024-03-02 10:30:00','C:\\자료\\2024 폴더와 \"따옴표\", """
            r"""탭\t하나.','둘째 기사','publish')""",
            r"""(3,1,'2024-03-03 00:00:00','','빈 글','draft')""",
        ]
    )
    + ";"
)
"""One extended INSERT on one line, as mysqldump writes it."""

MYSQL_DUMP = (
    r"""-- MySQL dump 10.13  Distrib 8.0.36, for Linux (x86_64)
--
-- Host: localhost    Database: newsroom
/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;
/*!50503 SET NAMES utf8mb4 */;
/*!40014 SET @OLD_UNIQUE_CHECKS=@@UNIQUE_CHECKS, UNIQUE_CHECKS=0 */;

--
-- Table structure for table `wp_posts`
--

DROP TABLE IF EXISTS `wp_posts`;
CREATE TABLE `wp_posts` (
  `ID` bigint unsigned NOT NULL AUTO_INCREMENT,
  `post_author` bigint unsigned NOT NULL DEFAULT '0',
  `post_date` datetime NOT NULL DEFAULT '0000-00-00 00:00:00',
  `post_content` longtext COLLATE utf8mb4_unicode_520_ci NOT NULL,
  `post_title` text COLLATE utf8mb4_unicode_520_ci NOT NULL,
  `post_status` varchar(20) NOT NULL DEFAULT 'publish',
  PRIMARY KEY (`ID`),
  KEY `type_status_date` (`post_status`,`post_date`,`ID`)
) ENGINE=InnoDB AUTO_INCREMENT=3 DEFAULT CHARSET=utf8mb4;

LOCK TABLES `wp_posts` WRITE;
/*!40000 ALTER TABLE `wp_posts` DISABLE KEYS */;
"""
    + POSTS_INSERT
    + r"""
/*!40000 ALTER TABLE `wp_posts` ENABLE KEYS */;
UNLOCK TABLES;

DROP TABLE IF EXISTS `wp_users`;
CREATE TABLE `wp_users` (
  `ID` bigint unsigned NOT NULL AUTO_INCREMENT,
  `user_login` varchar(60) NOT NULL DEFAULT '',
  `user_email` varchar(100) NOT NULL DEFAULT '',
  PRIMARY KEY (`ID`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO `wp_users` VALUES (1,'admin','admin@example.kr'),(2,'editor','ed@example.kr');
-- Dump completed on 2024-03-04 12:00:00
"""
)

POSTGRES_DUMP = (
    "--\n-- PostgreSQL database dump\n--\n\n"
    "SET statement_timeout = 0;\nSET standard_conforming_strings = on;\n"
    "SELECT pg_catalog.set_config('search_path', '', false);\n\n"
    "CREATE TABLE public.articles (\n    id integer NOT NULL,\n    headline text,\n"
    "    summary character varying(200),\n    article_body text\n);\n\n"
    "COPY public.articles (id, headline, summary, article_body) FROM stdin;\n"
    "1\t첫 기사\t요약\t서울시는 오늘 '새 정책'을 발표했다.\\n둘째 문단; 세미콜론과 -- 대시도 본문이다.\n"
    '2\t\\N\t\\N\tC:\\\\자료\\\\2024 폴더와 "따옴표", 탭\\t하나.\n'
    "\\.\n\n"
    "INSERT INTO public.articles VALUES "
    "(3, 'back\\slash', NULL, '셋째 기사 본문은 ''작은따옴표''를 씁니다.');\n"
    "INSERT INTO public.articles (id, article_body) VALUES (4, E'넷째\\n줄바꿈과 \\'따옴표\\'');\n"
    "\n--\n-- PostgreSQL database dump complete\n--\n"
)


def test_mysqldump_rows_become_documents_with_the_named_column() -> None:
    docs, failures = split(iter_extract_bytes(MYSQL_DUMP.encode(), "cms_dump.sql"))
    assert [(d.source, d.title, d.text) for d in docs] == [
        ("cms_dump.sql#wp_posts:1", "첫 기사", BODY_1),
        ("cms_dump.sql#wp_posts:2", "둘째 기사", BODY_2),
    ]
    assert docs[0].format == "sql"
    assert docs[0].metadata == {
        "ID": "1",
        "post_author": "1",
        "post_date": "2024-03-01 09:00:00",
        "post_status": "publish",
        "sql_table": "wp_posts",
        "text_columns": "post_content",
        "text_column_rule": "named",
    }
    assert failures == [
        ExtractionFailure("cms_dump.sql#wp_posts:3", "no text"),
        ExtractionFailure(
            "cms_dump.sql#wp_users",
            "table wp_users skipped: no text column among (ID, user_login, user_email); name one to read it",
        ),
    ]


def test_pg_dump_copy_blocks_and_inserts() -> None:
    docs, failures = split(iter_extract_bytes(POSTGRES_DUMP.encode(), "pg.sql"))
    assert failures == []
    assert [(d.source, d.title, d.text) for d in docs] == [
        ("pg.sql#articles:1", "첫 기사", BODY_1),
        ("pg.sql#articles:2", None, BODY_2),
        ("pg.sql#articles:3", "back\\slash", "셋째 기사 본문은 '작은따옴표'를 씁니다."),
        ("pg.sql#articles:4", None, "넷째\n줄바꿈과 '따옴표'"),
    ]
    assert docs[0].metadata["text_columns"] == "article_body"
    assert docs[0].metadata["summary"] == "요약"


def test_text_column_is_guessed_when_no_name_says_so() -> None:
    prose = "가나다라마바사 " * 20
    dump = (
        "CREATE TABLE t (no int, memo varchar(10), blob_a text);\n"
        f"INSERT INTO t VALUES (1, '짧은 메모', '{prose}'), (2, '메모', '둘째 행 본문');\n"
    )
    docs, failures = split(iter_extract_bytes(dump.encode(), "guess.sql"))
    assert failures == []
    assert [d.text for d in docs] == [prose, "둘째 행 본문"]
    assert {(d.metadata["text_columns"], d.metadata["text_column_rule"]) for d in docs} == {
        ("blob_a", "guessed")
    }


def test_text_column_given_by_name() -> None:
    dump = "INSERT INTO notes (id, memo) VALUES (1, '직접 고른 열의 본문');\n"
    options = RecordOptions(text_fields=("memo",))
    docs, failures = split(iter_extract_bytes(dump.encode(), "notes.sql", options=options))
    assert failures == []
    assert [(d.text, d.metadata["text_column_rule"]) for d in docs] == [("직접 고른 열의 본문", "given")]


def test_compressed_dump_without_extension_is_sniffed(tmp_path: Path) -> None:
    assert sniff_head(MYSQL_DUMP.encode(), "export") == (Format.SQL, "")
    path = tmp_path / "backup.sql.gz"
    path.write_bytes(gzip.compress(POSTGRES_DUMP.encode()))
    docs, failures = split(iter_extract(path, source="backup.sql.gz"))
    assert (len(docs), failures) == (4, [])
    assert docs[0].source == "backup.sql.gz#articles:1"


@pytest.mark.parametrize(
    ("dump", "reason"),
    [
        ("INSERT INTO t (body) VALUES ('끝나지 않은", "statement at line 1 not ended by ';'"),
        ("COPY t (body) FROM stdin;\n본문\n", "COPY into t not ended by '\\.'"),
        ("CREATE TABLE t (id int);\n", "SQL dump without INSERT or COPY rows"),
    ],
)
def test_broken_dumps_fail_with_a_reason(dump: str, reason: str) -> None:
    _, failures = split(iter_extract_bytes(dump.encode(), "bad.sql"))
    assert failures[-1] == ExtractionFailure("bad.sql", reason)


def test_a_bad_tuple_costs_its_statement_only() -> None:
    dump = "INSERT INTO t (body) VALUES ('하나'), (oops);\nINSERT INTO t (body) VALUES ('둘');\n"
    docs, failures = split(iter_extract_bytes(dump.encode(), "x.sql"))
    assert [d.text for d in docs] == ["하나", "둘"]
    assert failures == [ExtractionFailure("x.sql#L1", "line 1: unreadable value 'oops)' in INSERT")]
