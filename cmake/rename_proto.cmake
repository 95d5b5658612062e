# cmake -DIN=flame.proto -DOUT=ember_flame_wire.proto [-DPACKAGE=pkg] [-DINSTANCE_ONLY=ON]
#       -P rename_proto.cmake
# Ember's private copy of flame.proto: same messages, another package.
# INSTANCE_ONLY keeps what precedes the file's "frontend" section marker (the
# instance protocol), for a copy that only the instance server decodes.
if(NOT PACKAGE)
  set(PACKAGE ember.wire.flame.v1)
endif()
file(READ ${IN} text)
string(REPLACE "package flame.v1;" "package ${PACKAGE};" text "${text}")
if(INSTANCE_ONLY)
  string(FIND "${text}" "// ---------------------------------------------------------------- frontend" at)
  if(at LESS 0)
    message(FATAL_ERROR "${IN} has no frontend section marker")
  endif()
  string(SUBSTRING "${text}" 0 ${at} text)
endif()
file(WRITE ${OUT} "${text}")
