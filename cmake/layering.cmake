# Enforces Ember's layering at configure time: core knows no protocol,
# protocols know only core and the codecs they build on, handlers know no
# other handler unless listed. A violating #include fails the configure step.
#
# Each unit: its directory (for sources) and what it may include besides
# itself and the public core headers.
set(EMBER_LAYER_core "")
set(EMBER_LAYER_protocols/http2 "protocols/http1")  # RFC 9110 field syntax (chars.hpp)
set(EMBER_LAYER_protocols/grpc "protocols/http2")
set(EMBER_LAYER_protocols/http1 "")
set(EMBER_LAYER_protocols/websocket "protocols/http1")
set(EMBER_LAYER_protocols/amqp "")
set(EMBER_LAYER_protocols/http "protocols/http1;protocols/http2")
set(EMBER_LAYER_handlers/flame "protocols/http2;protocols/grpc;protocols/http1;ember/flame")
set(EMBER_LAYER_handlers/flare
    "protocols/http1;protocols/http2;protocols/http;protocols/websocket;ember/flare;ember/http_server")
set(EMBER_LAYER_handlers/queue "protocols/http1;protocols/amqp;ember/queue")

# Public headers that belong to a handler, not to core.
set(EMBER_HANDLER_HEADERS ember/flame ember/flare ember/queue ember/http_server)

function(ember_check_layering)
  set(units core protocols/http2 protocols/grpc protocols/http1 protocols/websocket
            protocols/amqp protocols/http handlers/flame handlers/flare handlers/queue)
  set(violations "")
  foreach(unit ${units})
    set(allowed ${unit} core ${EMBER_LAYER_${unit}})
    file(GLOB_RECURSE sources ${CMAKE_SOURCE_DIR}/${unit}/*.cpp ${CMAKE_SOURCE_DIR}/${unit}/*.hpp
         ${CMAKE_SOURCE_DIR}/${unit}/*.h ${CMAKE_SOURCE_DIR}/${unit}/*.c)
    foreach(src ${sources})
      file(STRINGS ${src} includes REGEX "^#include \"")
      foreach(line ${includes})
        string(REGEX REPLACE "^#include \"([^\"]+)\".*" "\\1" inc "${line}")
        set(layer "")
        if(inc MATCHES "^(core|protocols/[a-z0-9]+|handlers/[a-z0-9]+)/")
          set(layer ${CMAKE_MATCH_1})
        else()
          foreach(h ${EMBER_HANDLER_HEADERS})
            if(inc MATCHES "^${h}[._]")
              set(layer ${h})
            endif()
          endforeach()
        endif()
        if(layer STREQUAL "" OR layer IN_LIST allowed)
          continue()
        endif()
        file(RELATIVE_PATH rel ${CMAKE_SOURCE_DIR} ${src})
        list(APPEND violations "${rel} includes \"${inc}\" (${unit} may use: core ${EMBER_LAYER_${unit}})")
      endforeach()
    endforeach()
  endforeach()
  if(violations)
    list(JOIN violations "\n  " text)
    message(FATAL_ERROR "layering violations (see cmake/layering.cmake):\n  ${text}")
  endif()
endfunction()
