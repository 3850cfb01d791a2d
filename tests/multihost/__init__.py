"""One upload across three app hosts: bytes in the bucket (SeaweedFS), state in MariaDB,
every request to whichever host nginx picks in turn (no sticky sessions), or to the host a
test names. Each test module runs on a cluster of its own (conftest.py), so that under
pytest-xdist two modules run beside each other."""
