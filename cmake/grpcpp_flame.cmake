# grpc++'s own code for flame.proto (protoc --cpp_out and grpc_cpp_plugin),
# for the peers nobody here wrote: the integration tests' grpc++ client and
# the benchmarks' grpc++ rival. One static library per edition, compiled at
# the build's optimisation (the rival must not be handicapped) and only once
# however many programs link it. It carries its own copy of the flame.v1
# descriptors: a program links either this or Ember's flame handler library's
# renamed copy, never two copies of one name.
#
#   ember_grpcpp_flame_stubs(<target> <dir holding flame.proto>)

include_guard(GLOBAL)

pkg_check_modules(EMBER_GRPCPP REQUIRED IMPORTED_TARGET GLOBAL grpc++ protobuf)
find_program(EMBER_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)

function(ember_grpcpp_flame_stubs target proto_dir)
  if(TARGET ${target})
    return()
  endif()
  set(out ${CMAKE_BINARY_DIR}/grpcpp_stubs/${target})
  file(MAKE_DIRECTORY ${out})
  add_custom_command(
    OUTPUT ${out}/flame.pb.cc ${out}/flame.pb.h ${out}/flame.grpc.pb.cc ${out}/flame.grpc.pb.h
    COMMAND ${PROTOC} --cpp_out=${out} --grpc_out=${out}
            --plugin=protoc-gen-grpc=${EMBER_GRPC_CPP_PLUGIN} -I ${proto_dir} ${proto_dir}/flame.proto
    DEPENDS ${proto_dir}/flame.proto
    COMMENT "protoc + grpc_cpp_plugin ${proto_dir}/flame.proto (${target})")
  add_library(${target} STATIC ${out}/flame.pb.cc ${out}/flame.grpc.pb.cc)
  target_compile_options(${target} PRIVATE -w)  # generated code
  if(EMBER_SANITIZE)
    # grpc++'s generated code is not Ember's to check; uninstrumented, it
    # builds in a third of the time and still runs under ASan's allocator.
    target_compile_options(${target} PRIVATE -fno-sanitize=all)
  endif()
  target_include_directories(${target} BEFORE PUBLIC ${out})
  target_link_libraries(${target} PUBLIC PkgConfig::EMBER_GRPCPP)
endfunction()
