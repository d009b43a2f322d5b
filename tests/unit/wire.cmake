# wire.cmake - unit tests of node/dns/wire.c (included from tests/CMakeLists.txt).
tld_unit_test(test_wire tlddns)
