# Test registration: cmocka unit tests (tests/unit), integration tests against the real binary
# (tests/integration), fuzz targets (tests/fuzz) and lint checks. Included by CMakeLists.txt.

set(TEST_ENV
    "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1"
    "UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1"
    "LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/tests/lsan.supp:print_suppressions=0"
    "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1"
    "ABACUS_TEST_DATA=${CMAKE_SOURCE_DIR}/tests/data")

function(abacus_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES} ${CMAKE_SOURCE_DIR}/tests/harness.c)
  target_compile_options(${name} PRIVATE ${ABACUS_WARNINGS})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests)
  target_compile_definitions(${name} PRIVATE ABACUS_BIN="$<TARGET_FILE:abacus>")
  target_link_libraries(${name} PRIVATE abacus_lib PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 60)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS "${T_LABELS}"
                       ENVIRONMENT "${TEST_ENV}")
endfunction()

foreach(mod clock db err http json jsonw log mem migrate snapshot url utf8)
  abacus_test(test_${mod} SOURCES tests/unit/test_${mod}.c LABELS unit)
endforeach()

foreach(t collect_parse collect_store)
  abacus_test(test_${t} SOURCES tests/unit/test_${t}.c LABELS unit)
  target_link_libraries(test_${t} PRIVATE abacus_collect)
endforeach()
abacus_test(test_condition SOURCES tests/unit/test_condition.c LABELS unit)
target_link_libraries(test_condition PRIVATE abacus_assign)
abacus_test(test_stats SOURCES tests/unit/test_stats.c LABELS unit)
target_link_libraries(test_stats PRIVATE abacus_analyze)
abacus_test(test_peeking SOURCES tests/unit/test_peeking.c LABELS unit TIMEOUT 300)
target_link_libraries(test_peeking PRIVATE abacus_analyze)
abacus_test(test_analyze SOURCES tests/unit/test_analyze.c LABELS unit)
target_link_libraries(test_analyze PRIVATE abacus_analyze abacus_collect)
abacus_test(test_conformance SOURCES tests/unit/test_conformance.c LABELS unit)
target_link_libraries(test_conformance PRIVATE abacus_assign)

foreach(it server cli assign)
  abacus_test(it_${it} SOURCES tests/integration/it_${it}.c
              LABELS integration TIMEOUT 180)
  add_dependencies(it_${it} abacus)
endforeach()
target_link_libraries(it_assign PRIVATE abacus_assign)
# The control plane and replication: admin API, publishing, a replicating node against
# a test origin that serves faults (tests/tools/snapshot_origin.py), and the geo test with nginx
# mirrors.
foreach(it web replication geo)
  abacus_test(it_${it} SOURCES tests/integration/it_${it}.c LABELS integration TIMEOUT 300)
  add_dependencies(it_${it} abacus)
  target_compile_definitions(it_${it} PRIVATE
    SNAPSHOT_ORIGIN="${CMAKE_SOURCE_DIR}/tests/tools/snapshot_origin.py")
endforeach()
abacus_test(test_web_validate SOURCES tests/unit/test_web_validate.c LABELS unit)
target_link_libraries(test_web_validate PRIVATE abacus_web)
abacus_test(test_web_auth SOURCES tests/unit/test_web_auth.c LABELS unit)
target_link_libraries(test_web_auth PRIVATE abacus_web)
# Sessions, CSRF, roles, throttling and timeouts: the control plane in-process on loopback with
# a clock the test moves.
abacus_test(it_auth SOURCES tests/integration/it_auth.c LABELS integration TIMEOUT 300)
target_link_libraries(it_auth PRIVATE abacus_web)

foreach(it collect collect_crash)
  abacus_test(it_${it} SOURCES tests/integration/it_${it}.c LABELS integration TIMEOUT 300)
  add_dependencies(it_${it} abacus)
endforeach()
# The disk-full test's full disk: a preloaded library that fails the collector's writes with
# ENOSPC on demand (tests/tools/disk_full.c), so the collector itself carries no test hook.
add_library(disk_full MODULE tests/tools/disk_full.c)
target_compile_options(disk_full PRIVATE ${ABACUS_WARNINGS} -fno-sanitize=all)
target_link_options(disk_full PRIVATE -fno-sanitize=all)
target_link_libraries(disk_full PRIVATE ${CMAKE_DL_LIBS})
add_dependencies(it_collect disk_full)
target_compile_definitions(it_collect PRIVATE DISK_FULL_LIB="$<TARGET_FILE:disk_full>")
# The analysis end to end: abacus up, events through the collector, abacus analyze, the schema.
abacus_test(it_analyze SOURCES tests/integration/it_analyze.c LABELS integration TIMEOUT 300)
add_dependencies(it_analyze abacus)
target_compile_definitions(it_analyze PRIVATE
  VALIDATE_JSON="${CMAKE_SOURCE_DIR}/tests/tools/validate_json.py")
# ClickHouse: each test starts its own clickhouse-server (scripts/test installs it)
# on free loopback ports with its data in a temp dir.
find_program(CLICKHOUSE_SERVER clickhouse-server PATHS /usr/sbin /usr/bin)
if(NOT CLICKHOUSE_SERVER)
  message(FATAL_ERROR "the ClickHouse tests need clickhouse-server (scripts/test installs it)")
endif()
abacus_test(it_clickhouse SOURCES tests/integration/it_clickhouse.c
            tests/integration/ch_server.c LABELS integration TIMEOUT 300)
add_dependencies(it_clickhouse abacus)
target_compile_definitions(it_clickhouse PRIVATE CLICKHOUSE_SERVER="${CLICKHOUSE_SERVER}"
  CLUSTER_DDL="${CMAKE_SOURCE_DIR}/migrations/clickhouse/cluster/events_distributed.sql")
target_link_libraries(it_clickhouse PRIVATE abacus_analyze)
abacus_test(it_client SOURCES tests/integration/it_client.c LABELS integration TIMEOUT 180)
add_dependencies(it_client abacus write_snapshot)
target_link_libraries(it_client PRIVATE abacus_client)
target_compile_definitions(it_client PRIVATE WRITE_SNAPSHOT_BIN="$<TARGET_FILE:write_snapshot>")
# the README's SDK example, built so that it keeps compiling
add_executable(client_example tests/sdk/client_example.c)
target_compile_options(client_example PRIVATE ${ABACUS_WARNINGS})
target_link_libraries(client_example PRIVATE abacus_client)

# The real GrowthBook JavaScript SDK against a running assign node (scripts/test installs node and
# the pinned SDK into tests/sdk/node_modules).
find_program(NODE node)
if(NOT NODE OR NOT EXISTS ${CMAKE_SOURCE_DIR}/tests/sdk/node_modules/@growthbook/growthbook)
  message(FATAL_ERROR "the SDK agreement test needs node and tests/sdk/node_modules "
                      "(scripts/test installs both)")
endif()
add_test(NAME sdk_growthbook_agreement
         COMMAND ${CMAKE_SOURCE_DIR}/tests/sdk/run_gb_agreement.sh $<TARGET_FILE:abacus>
                 $<TARGET_FILE:write_snapshot> ${CMAKE_SOURCE_DIR}/tests/data/assign_fixture.json)
set_tests_properties(sdk_growthbook_agreement PROPERTIES LABELS integration TIMEOUT 600
                     ENVIRONMENT "${TEST_ENV}")

# The real Segment Node library sending to a collector (also installed by scripts/test).
if(NOT EXISTS ${CMAKE_SOURCE_DIR}/tests/sdk/node_modules/@segment/analytics-node)
  message(FATAL_ERROR "the Segment client test needs tests/sdk/node_modules/@segment/analytics-node "
                      "(scripts/test installs it)")
endif()
add_test(NAME sdk_segment_collect
         COMMAND ${CMAKE_SOURCE_DIR}/tests/sdk/run_segment.sh $<TARGET_FILE:abacus>
                 $<TARGET_FILE:write_snapshot>)
set_tests_properties(sdk_segment_collect PROPERTIES LABELS integration TIMEOUT 300
                     ENVIRONMENT "${TEST_ENV}")

# The web UI in headless Chromium (Debian's chromium) driven by playwright-core (scripts/test
# installs both), against a real `abacus up`; screenshots land in e2e-artifacts/.
find_program(CHROMIUM NAMES chromium chromium-browser)
if(NOT CHROMIUM OR NOT EXISTS ${CMAKE_SOURCE_DIR}/tests/e2e/node_modules/playwright-core)
  message(FATAL_ERROR "the UI tests need chromium and tests/e2e/node_modules "
                      "(scripts/test installs both)")
endif()
add_test(NAME e2e_ui
         COMMAND ${CMAKE_SOURCE_DIR}/tests/e2e/run_e2e.sh $<TARGET_FILE:abacus>
                 ${CMAKE_BINARY_DIR}/e2e-artifacts)
set_tests_properties(e2e_ui PROPERTIES LABELS "integration;e2e" TIMEOUT 600
                     ENVIRONMENT "${TEST_ENV};CHROMIUM=${CHROMIUM}")

# libFuzzer steers by the coverage of the code under test, so with ABACUS_FUZZ the component
# libraries that fuzz targets exercise are instrumented too.
if(ABACUS_FUZZ)
  foreach(lib abacus_lib abacus_assign abacus_web abacus_collect)
    target_compile_options(${lib} PRIVATE -fsanitize=fuzzer-no-link)
    target_link_options(${lib} INTERFACE -fsanitize=fuzzer-no-link)
  endforeach()
endif()

# Fuzz targets: with ABACUS_FUZZ (clang), real libFuzzer runs bounded by a run count; otherwise
# each target is linked with a driver that replays its corpus, so every build exercises them.
foreach(target url json jsonw condition post admin session manifest events clickhouse)
  set(exe fuzz_${target})
  set(corpus ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${target})
  if(ABACUS_FUZZ)
    add_executable(${exe} tests/fuzz/fuzz_${target}.c)
    target_compile_options(${exe} PRIVATE -fsanitize=fuzzer)
    target_link_options(${exe} PRIVATE -fsanitize=fuzzer)
    target_link_libraries(${exe} PRIVATE abacus_lib)
    # libFuzzer adds what it finds to the first corpus directory: one in the build tree, so
    # the seeds in tests/fuzz/corpus stay as committed
    file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/fuzz-corpus/${target})
    add_test(NAME ${exe} COMMAND ${exe} -runs=1000000 -max_len=4096 -timeout=10
             -rss_limit_mb=2048 ${CMAKE_BINARY_DIR}/fuzz-corpus/${target} ${corpus})
    set(FUZZ_TIMEOUT 600)
  else()
    add_executable(${exe} tests/fuzz/fuzz_${target}.c tests/fuzz/replay.c)
    target_link_libraries(${exe} PRIVATE abacus_lib)
    add_test(NAME ${exe} COMMAND ${exe} ${corpus})
    set(FUZZ_TIMEOUT 60)
  endif()
  if(target STREQUAL "condition" OR target STREQUAL "manifest" OR target STREQUAL "post")
    target_link_libraries(${exe} PRIVATE abacus_assign)
  endif()
  if(target STREQUAL "admin" OR target STREQUAL "session")
    target_link_libraries(${exe} PRIVATE abacus_web)
  endif()
  if(target STREQUAL "events")
    target_link_libraries(${exe} PRIVATE abacus_collect)
  endif()
  target_compile_options(${exe} PRIVATE ${ABACUS_WARNINGS})
  set_tests_properties(${exe} PROPERTIES TIMEOUT ${FUZZ_TIMEOUT} LABELS fuzz
                       ENVIRONMENT "${TEST_ENV}")
endforeach()

if(ABACUS_LINT)
  add_test(NAME lint_banned_functions COMMAND ${CMAKE_SOURCE_DIR}/scripts/checksrc
           WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
  find_program(CPPCHECK cppcheck)
  find_program(CLANG_TIDY clang-tidy)
  if(NOT CPPCHECK OR NOT CLANG_TIDY)
    message(FATAL_ERROR "lint tests need cppcheck and clang-tidy (scripts/setup installs them), "
                        "or configure with -DABACUS_LINT=OFF")
  endif()
  # every folder of the product's C code (tests and benchmarks are not linted)
  set(LINT_SOURCES)
  set(LINT_DIRS)
  foreach(dir lib src assign analyze collect web)
    file(GLOB found CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/${dir}/*.c)
    if(found)
      list(APPEND LINT_SOURCES ${found})
      list(APPEND LINT_DIRS ${CMAKE_SOURCE_DIR}/${dir})
    endif()
  endforeach()
  add_test(NAME lint_cppcheck
           COMMAND ${CPPCHECK} --error-exitcode=1 --enable=warning,portability,performance
                   --inline-suppr --quiet -D__GNUC__ -I${CMAKE_SOURCE_DIR}/include ${LINT_DIRS})
  add_test(NAME lint_clang_tidy
           COMMAND ${CLANG_TIDY} --quiet -p ${CMAKE_BINARY_DIR} ${LINT_SOURCES})
  set_tests_properties(lint_banned_functions lint_cppcheck lint_clang_tidy PROPERTIES
                       LABELS lint TIMEOUT 600)
endif()

# The nightly report: the report of seeded days against the analysis, its webhook
# against a receiver that fails first (tests/tools/webhook_receiver.py), and its scheduler with an
# injected clock. it_report leaves a report in the build dir for the browser test.
find_program(PYTHON3 python3 REQUIRED)
abacus_test(it_report SOURCES tests/integration/it_report.c LABELS integration TIMEOUT 300)
add_dependencies(it_report abacus)
target_link_libraries(it_report PRIVATE abacus_collect)
target_compile_definitions(it_report PRIVATE
  CHECK_REPORT="${CMAKE_SOURCE_DIR}/tests/tools/check_report.py"
  SCHEMA="${CMAKE_SOURCE_DIR}/tests/data/results.schema.json"
  WEBHOOK_RECEIVER="${CMAKE_SOURCE_DIR}/tests/tools/webhook_receiver.py"
  BUILD_DIR="${CMAKE_BINARY_DIR}" PYTHON3="${PYTHON3}")
set_tests_properties(it_report PROPERTIES FIXTURES_SETUP report_html)
abacus_test(test_report_schedule SOURCES tests/unit/test_report_schedule.c LABELS unit)
target_link_libraries(test_report_schedule PRIVATE abacus_analyze abacus_collect)
# The results service's schedule with an injected clock over real SQLite files.
abacus_test(test_refresh SOURCES tests/unit/test_refresh.c LABELS unit)
target_link_libraries(test_refresh PRIVATE abacus_analyze abacus_collect)
# ... and the HTML it_report left in the build dir, opened from file:// in headless Chromium with
# the network blocked; the screenshot lands in e2e-artifacts/report.png.
add_test(NAME e2e_report
         COMMAND ${NODE} ${CMAKE_SOURCE_DIR}/tests/e2e/report.test.mjs
                 ${CMAKE_BINARY_DIR}/report-e2e ${CMAKE_BINARY_DIR}/e2e-artifacts)
set_tests_properties(e2e_report PROPERTIES LABELS "integration;e2e" TIMEOUT 300
                     FIXTURES_REQUIRED report_html ENVIRONMENT "${TEST_ENV};CHROMIUM=${CHROMIUM}")
