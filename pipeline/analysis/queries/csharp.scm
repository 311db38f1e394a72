(class_declaration name: (identifier) @name) @definition.class
(interface_declaration name: (identifier) @name) @definition.class
(struct_declaration name: (identifier) @name) @definition.class
(record_declaration name: (identifier) @name) @definition.class
(enum_declaration name: (identifier) @name) @definition.class
(method_declaration name: (identifier) @name) @definition.method
(constructor_declaration name: (identifier) @name) @definition.method
(local_function_statement name: (identifier) @name) @definition.function
(namespace_declaration name: [(identifier) (qualified_name)] @name) @definition.module

(class_declaration (base_list [(identifier) (qualified_name) (generic_name)] @inherit.base)) @inherit.class
(struct_declaration (base_list [(identifier) (qualified_name) (generic_name)] @inherit.base)) @inherit.class
(interface_declaration (base_list [(identifier) (qualified_name) (generic_name)] @inherit.base)) @inherit.class
(record_declaration (base_list [(identifier) (qualified_name) (generic_name)] @inherit.base)) @inherit.class

(using_directive [(identifier) (qualified_name)] @import.module) @import

(invocation_expression function: (identifier) @call.name) @call
(invocation_expression function: (member_access_expression name: (identifier) @call.name)) @call
(invocation_expression function: (generic_name (identifier) @call.name)) @call
(object_creation_expression type: (identifier) @call.name) @call
